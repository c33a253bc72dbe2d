// Unit tests of sweep/: the pieces ranks exchange and how an evaluation is split.
#include <catch2/catch.hpp>

#include "mpq/sweep/fp_check.h"
#include "mpq/sweep/serialize.h"
#include "mpq/sweep/trial.h"

using namespace mpq;

TEST_CASE("layer outcomes and tables survive the rank exchange field by field", "[sweep]") {
  ptq::LayerOutcome o;
  o.quantized = true;
  auto& q = o.q;
  q.bits = 3;
  q.c_out = 2;
  q.d = 6;
  q.max_points = 2;
  q.points = {1, 2};
  q.codes = {1, -2, 3, 0, 0, 3, -3, 1, 2, 0, 1, 1, 0, 0, 1, -1, 2, 3};
  q.scales = {0.5f, 0.25f, 0.125f};
  q.point_channel = {0, 1, 1};
  q.weight_error = {1.f, 0.5f, 2.f, 0.25f};
  q.output_error = {3.f, 1.f, 4.f, 2.f};
  q.grant_order = {-1, -1, -1, 0};
  q.channel_bits = {3, 4};
  q.ocs_source = {1, 0};  // two split input channels of a 1x... kernel
  q.ocs_k = 2;
  o.attrs = {{"step", 0.5}, {"method", "ocs"}};
  std::string buf;
  sweep::write_outcome(buf, o);
  sweep::write_int(buf, 42);
  size_t pos = 0;
  const ptq::LayerOutcome r = sweep::read_outcome(buf, pos);
  CHECK(sweep::read_int(buf, pos) == 42);
  CHECK(pos == buf.size());
  CHECK(r.quantized);
  CHECK(r.q.bits == q.bits);
  CHECK(r.q.c_out == q.c_out);
  CHECK(r.q.d == q.d);
  CHECK(r.q.max_points == q.max_points);
  CHECK(r.q.points == q.points);
  CHECK(r.q.codes == q.codes);
  CHECK(r.q.scales == q.scales);
  CHECK(r.q.point_channel == q.point_channel);
  CHECK(r.q.weight_error == q.weight_error);
  CHECK(r.q.output_error == q.output_error);
  CHECK(r.q.grant_order == q.grant_order);
  CHECK(r.q.channel_bits == q.channel_bits);
  CHECK(r.q.ocs_source == q.ocs_source);
  CHECK(r.q.ocs_k == q.ocs_k);
  CHECK(r.q.original_d() == 2);
  CHECK(r.attrs == o.attrs);

  quant::LayerTables t;
  t.c_out = 2;
  t.K = 2;
  t.point_cost_macs = 123.5;
  t.weight_error = {1, 2, 3, 4};
  t.output_error = {5, 6, 7, 8};
  t.weight_energy = {9, 10};
  t.output_energy = {11, 12};
  std::string tb;
  sweep::write_tables(tb, t);
  pos = 0;
  const auto rt = sweep::read_tables(tb, pos);
  CHECK(pos == tb.size());
  CHECK(rt.c_out == t.c_out);
  CHECK(rt.K == t.K);
  CHECK(rt.point_cost_macs == t.point_cost_macs);
  CHECK(rt.weight_error == t.weight_error);
  CHECK(rt.output_error == t.output_error);
  CHECK(rt.weight_energy == t.weight_energy);
  CHECK(rt.output_energy == t.output_energy);
}

TEST_CASE("evaluation shards are batch-aligned, cover every example once, in order", "[sweep]") {
  for (int64_t n : {0, 1, 7, 64, 65, 1000}) {
    for (int64_t batch : {1, 8, 64, 256}) {
      for (int size : {1, 2, 3, 8}) {
        int64_t next = 0;
        for (int rank = 0; rank < size; ++rank) {
          const auto [b, e] = sweep::eval_shard(n, batch, rank, size);
          INFO("n " << n << " batch " << batch << " rank " << rank << "/" << size);
          CHECK(b == next);  // contiguous, in rank order
          CHECK(e >= b);
          // Every batch a rank runs starts where the single-process run starts one: the same
          // images go through the network together (their logits may depend on the batch).
          CHECK(b % batch == 0);
          next = e;
        }
        CHECK(next == n);
      }
    }
  }
}

TEST_CASE("the FP check compares a detector's published mAP in the trial's headline", "[sweep]") {
  const nlohmann::json meta = {
      {"published", {{"VOC2007-test", {{"map_voc07", 68.1}, {"map_voc12", 70.4}}}}}};
  auto r07 = sweep::published_reference(meta, "voc", "2007", "map_voc07");
  auto r12 = sweep::published_reference(meta, "voc", "2007", "map_voc12");
  REQUIRE(r07);
  REQUIRE(r12);
  CHECK(r07->metric == "map_voc07");
  CHECK(r07->value == 68.1);  // copied, not computed
  CHECK(r12->metric == "map_voc12");
  CHECK(r12->source == "VOC2007-test map_voc12");
  // Only the other metric published: that one, named as such.
  const nlohmann::json only07 = {{"published", {{"VOC2007-test", {{"map_voc07", 68.1}}}}}};
  CHECK(sweep::published_reference(only07, "voc", "2007", "map_voc12")->metric == "map_voc07");
  CHECK_FALSE(sweep::published_reference(only07, "voc", "2012", "map_voc07"));
  const nlohmann::json imagenet = {{"published", {{"ImageNet-1K", {{"acc@1", 69.758}}}}}};
  CHECK(sweep::published_reference(imagenet, "imagenet", "", "top1")->metric == "top1");
}
