#include "mpq/sweep/serialize.h"

#include <cstring>

#include "mpq/util/error.h"

namespace mpq::sweep {

namespace {

template <typename T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
T get(const std::string& in, size_t& pos) {
  MPQ_ASSERT(pos + sizeof(T) <= in.size(), "serialized buffer too short");
  T v;
  std::memcpy(&v, in.data() + pos, sizeof(T));
  pos += sizeof(T);
  return v;
}

template <typename T>
void put_vec(std::string& out, const std::vector<T>& v) {
  put<int64_t>(out, static_cast<int64_t>(v.size()));
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

template <typename T>
std::vector<T> get_vec(const std::string& in, size_t& pos) {
  auto n = static_cast<size_t>(get<int64_t>(in, pos));
  MPQ_ASSERT(pos + n * sizeof(T) <= in.size(), "serialized buffer too short");
  std::vector<T> v(n);
  if (n) std::memcpy(v.data(), in.data() + pos, n * sizeof(T));
  pos += n * sizeof(T);
  return v;
}

void put_str(std::string& out, const std::string& s) {
  put<int64_t>(out, static_cast<int64_t>(s.size()));
  out += s;
}

std::string get_str(const std::string& in, size_t& pos) {
  auto n = static_cast<size_t>(get<int64_t>(in, pos));
  MPQ_ASSERT(pos + n <= in.size(), "serialized buffer too short");
  std::string s = in.substr(pos, n);
  pos += n;
  return s;
}

}  // namespace

void write_int(std::string& out, int64_t v) {
  put(out, v);
}
int64_t read_int(const std::string& in, size_t& pos) {
  return get<int64_t>(in, pos);
}

void write_tables(std::string& out, const quant::LayerTables& t) {
  put(out, t.c_out);
  put<int64_t>(out, t.K);
  put(out, t.point_cost_macs);
  put_vec(out, t.weight_error);
  put_vec(out, t.output_error);
  put_vec(out, t.weight_energy);
  put_vec(out, t.output_energy);
}

quant::LayerTables read_tables(const std::string& in, size_t& pos) {
  quant::LayerTables t;
  t.c_out = get<int64_t>(in, pos);
  t.K = static_cast<int>(get<int64_t>(in, pos));
  t.point_cost_macs = get<double>(in, pos);
  t.weight_error = get_vec<double>(in, pos);
  t.output_error = get_vec<double>(in, pos);
  t.weight_energy = get_vec<double>(in, pos);
  t.output_energy = get_vec<double>(in, pos);
  return t;
}

void write_outcome(std::string& out, const ptq::LayerOutcome& o) {
  put<int64_t>(out, o.quantized ? 1 : 0);
  const auto& q = o.q;
  put<int64_t>(out, q.bits);
  put(out, q.c_out);
  put(out, q.d);
  put<int64_t>(out, q.max_points);
  put_vec(out, q.points);
  put_vec(out, q.codes);
  put_vec(out, q.scales);
  put_vec(out, q.point_channel);
  put_vec(out, q.weight_error);
  put_vec(out, q.output_error);
  put_vec(out, q.grant_order);
  put_vec(out, q.channel_bits);
  put_vec(out, q.ocs_source);
  put<int64_t>(out, q.ocs_k);
  put_str(out, o.attrs.dump());
}

ptq::LayerOutcome read_outcome(const std::string& in, size_t& pos) {
  ptq::LayerOutcome o;
  o.quantized = get<int64_t>(in, pos) != 0;
  auto& q = o.q;
  q.bits = static_cast<int>(get<int64_t>(in, pos));
  q.c_out = get<int64_t>(in, pos);
  q.d = get<int64_t>(in, pos);
  q.max_points = static_cast<int>(get<int64_t>(in, pos));
  q.points = get_vec<int32_t>(in, pos);
  q.codes = get_vec<int8_t>(in, pos);
  q.scales = get_vec<float>(in, pos);
  q.point_channel = get_vec<int32_t>(in, pos);
  q.weight_error = get_vec<float>(in, pos);
  q.output_error = get_vec<float>(in, pos);
  q.grant_order = get_vec<int32_t>(in, pos);
  q.channel_bits = get_vec<int8_t>(in, pos);
  q.ocs_source = get_vec<int64_t>(in, pos);
  q.ocs_k = get<int64_t>(in, pos);
  o.attrs = nlohmann::json::parse(get_str(in, pos));
  return o;
}

}  // namespace mpq::sweep
