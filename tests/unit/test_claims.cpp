// Trial claims with leases (store/claims.h): exclusive claims, take-over of stale and dead
// holders, abandoning without a gap, many workers racing for the same trials; and Slurm time
// limits (launch/slurm.h).
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "helpers.h"
#include "mpq/launch/slurm.h"
#include "mpq/store/claims.h"
#include "mpq/util/error.h"
#include "torch_catch.h"

namespace fs = std::filesystem;
using mpq::store::ClaimStore;
using mpq::store::WorkerIdentity;

namespace {

WorkerIdentity worker(const std::string& id, int pid = static_cast<int>(::getpid()),
                      const std::string& host = "testhost") {
  WorkerIdentity w;
  w.id = id;
  w.host = host;
  w.pid = pid;
  return w;
}

}  // namespace

TEST_CASE("a claim is exclusive until released", "[claims]") {
  const auto dir = mpq::test::fresh_dir("claims_exclusive", false);
  ClaimStore a(dir, worker("a"), 60), b(dir, worker("b"), 60);
  REQUIRE(a.try_claim("t1"));
  CHECK_FALSE(b.try_claim("t1"));
  CHECK_FALSE(a.try_claim("t1"));  // held by a live claim, even our own
  CHECK(b.try_claim("t2"));
  auto c = b.current("t1");
  CHECK(c.generation == 1);
  CHECK(c.live);
  CHECK(c.holder.value("worker", "") == "a");
  CHECK(b.list().size() == 2);
  a.release("t1");
  CHECK(b.current("t1").generation == 0);
  CHECK(b.try_claim("t1"));
  CHECK(b.held() == std::vector<std::string>{"t1", "t2"});
  fs::remove_all(dir);
}

TEST_CASE("a stale claim is taken over and its old holder learns it lost it", "[claims]") {
  // A test clock instead of sleeping: claims age only when the test says so.
  double t = 1.0e9;
  const ClaimStore::Clock clock = [&t] { return t; };
  const auto dir = mpq::test::fresh_dir("claims_stale", false);
  ClaimStore a(dir, worker("a"), 30, clock), b(dir, worker("b"), 30, clock);
  REQUIRE(a.try_claim("t"));
  CHECK(a.heartbeat().empty());
  t += 29;  // within the lease
  CHECK(b.current("t").live);
  CHECK_FALSE(b.try_claim("t"));
  t += 2;                                                        // 31 s without a heartbeat: stale
  CHECK(b.current("t").age_seconds == Approx(31).margin(1e-3));  // mtimes keep ns; float slack
  CHECK_FALSE(b.current("t").live);
  REQUIRE(b.try_claim("t"));
  auto c = a.current("t");
  CHECK(c.generation == 2);
  CHECK(c.live);  // b's claim is new
  CHECK(c.holder.value("worker", "") == "b");
  CHECK(c.holder["took_over"].value("worker", "") == "a");
  CHECK(a.heartbeat() == std::vector<std::string>{"t"});
  CHECK(a.held().empty());
  a.release("t");  // no longer ours: must not remove b's claim
  CHECK(b.current("t").generation == 2);
  b.release("t");
  CHECK(a.current("t").generation == 0);
  CHECK(fs::is_empty(dir));
  fs::remove_all(dir);
}

TEST_CASE("a heartbeat keeps a claim live past its lease", "[claims]") {
  double t = 1.0e9;
  const ClaimStore::Clock clock = [&t] { return t; };
  const auto dir = mpq::test::fresh_dir("claims_heartbeat", false);
  ClaimStore a(dir, worker("a"), 40, clock), b(dir, worker("b"), 40, clock);
  REQUIRE(a.try_claim("t"));
  for (int i = 0; i < 6; ++i) {
    t += 10;
    CHECK(a.heartbeat().empty());
  }
  CHECK(b.current("t").live);  // 60 s after the claim, 0 s after the last heartbeat
  CHECK_FALSE(b.try_claim("t"));
  t += 39;
  CHECK(b.current("t").live);
  t += 2;  // 41 s after the last heartbeat
  CHECK_FALSE(b.current("t").live);
  fs::remove_all(dir);
}

TEST_CASE("the real clock: a claim not renewed goes stale after its lease", "[claims]") {
  // One check on the kernel's clock and mtimes (the default), with a margin of 4x the lease.
  const auto dir = mpq::test::fresh_dir("claims_realclock", false);
  ClaimStore a(dir, worker("a"), 0.1), b(dir, worker("b"), 0.1);
  REQUIRE(a.try_claim("t"));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  CHECK_FALSE(b.current("t").live);
  CHECK(b.try_claim("t"));
  fs::remove_all(dir);
}

TEST_CASE("an abandoned claim is taken over at once, keeping its generation", "[claims]") {
  const auto dir = mpq::test::fresh_dir("claims_abandon", false);
  ClaimStore a(dir, worker("a"), 3600), b(dir, worker("b"), 3600);
  REQUIRE(a.try_claim("t"));
  a.abandon("t");
  CHECK(a.held().empty());
  auto c = b.current("t");
  CHECK(c.generation == 1);  // the file stays: no gap for a racing prober
  CHECK_FALSE(c.live);
  CHECK(c.abandoned);  // shown as such by `mpq status`, not as a heartbeat 56 years old
  REQUIRE(b.try_claim("t"));
  CHECK(b.current("t").generation == 2);
  CHECK_FALSE(b.current("t").abandoned);
  b.release("t");
  CHECK(fs::is_empty(dir));
  fs::remove_all(dir);
}

TEST_CASE("a claim of a dead process on this host is stale whatever its lease", "[claims]") {
  const auto dir = mpq::test::fresh_dir("claims_dead", false);
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  ::waitpid(child, nullptr, 0);  // reaped: its pid no longer exists
  const std::string host = WorkerIdentity::current("test").host;
  ClaimStore dead(dir, worker("dead", child, host), 3600);
  ClaimStore other_host(dir, worker("far", child, "elsewhere"), 3600);
  ClaimStore b(dir, worker("b", static_cast<int>(::getpid()), host), 3600);
  REQUIRE(dead.try_claim("t"));
  REQUIRE(other_host.try_claim("u"));
  CHECK_FALSE(b.current("t").live);
  CHECK(b.try_claim("t"));
  // A pid on another host says nothing about this host's processes: only the lease counts.
  CHECK(b.current("u").live);
  CHECK_FALSE(b.try_claim("u"));
  fs::remove_all(dir);
}

TEST_CASE("workers racing for the same trials each get a trial at most once", "[claims]") {
  const auto dir = mpq::test::fresh_dir("claims_race", false);
  constexpr int kWorkers = 8, kTrials = 200;
  std::vector<std::unique_ptr<ClaimStore>> stores;
  for (int w = 0; w < kWorkers; ++w)
    stores.push_back(std::make_unique<ClaimStore>(dir, worker("w" + std::to_string(w)), 60));
  std::vector<std::vector<int>> won(kWorkers);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w)
    threads.emplace_back([&, w] {
      while (!go) std::this_thread::yield();
      for (int t = 0; t < kTrials; ++t)
        if (stores[w]->try_claim("t" + std::to_string(t))) won[w].push_back(t);
    });
  go = true;
  for (auto& t : threads) t.join();
  std::map<int, int> owners;
  for (int w = 0; w < kWorkers; ++w)
    for (int t : won[w]) ++owners[t];
  CHECK(owners.size() == kTrials);                  // every trial claimed...
  for (const auto& [t, n] : owners) CHECK(n == 1);  // ...by exactly one worker
  fs::remove_all(dir);
}

TEST_CASE("Slurm time limits parse in every sbatch form", "[slurm]") {
  using mpq::launch::parse_slurm_time;
  CHECK(parse_slurm_time("30") == 30 * 60);
  CHECK(parse_slurm_time("30:15") == 30 * 60 + 15);
  CHECK(parse_slurm_time("2:00:00") == 7200);
  CHECK(parse_slurm_time("1-0") == 86400);
  CHECK(parse_slurm_time("1-2:30") == 86400 + 2 * 3600 + 30 * 60);
  CHECK(parse_slurm_time("2-01:02:03") == 2 * 86400 + 3600 + 120 + 3);
  for (const char* bad : {"", "10m", "1:2:3:4", "-5", "1-", "a:b", "1-2-3", "1:-2"})
    CHECK_THROWS_AS(parse_slurm_time(bad), mpq::ConfigError);
}
