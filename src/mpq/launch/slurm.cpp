#include "mpq/launch/slurm.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "mpq/report/table.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/sweep/claiming.h"
#include "mpq/sweep/sweep_config.h"
#include "mpq/util/atomic_file.h"
#include "mpq/util/error.h"
#include "mpq/util/process.h"
#include "mpq/util/provenance.h"

namespace mpq::launch {
namespace fs = std::filesystem;
using nlohmann::json;

long long parse_slurm_time(const std::string& t) {
  static const std::regex re(R"(^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$)");
  std::smatch m;
  if (!std::regex_match(t, m, re))
    throw ConfigError("--time " + t +
                      ": expected a Slurm time limit (M, M:S, H:M:S, D-H, D-H:M or D-H:M:S)");
  auto num = [&](int k) { return m[k].matched ? std::stoll(m[k].str()) : 0LL; };
  long long s = 0;
  if (m[1].matched) {  // D-H[:M[:S]]
    s = num(1) * 86400 + num(2) * 3600 + num(3) * 60 + num(4);
  } else if (m[4].matched) {  // H:M:S
    s = num(2) * 3600 + num(3) * 60 + num(4);
  } else if (m[3].matched) {  // M:S
    s = num(2) * 60 + num(3);
  } else {  // M
    s = num(2) * 60;
  }
  if (s <= 0) throw ConfigError("--time " + t + ": must be positive");
  return s;
}

namespace {

std::string absolute(const std::string& p) {
  return fs::absolute(fs::path(p)).lexically_normal().string();
}

std::string sbatch_line(const std::string& arg) {
  return "#SBATCH " + arg + "\n";
}

// The part every script shares: requeue-aware signal forwarding around one command, and the
// requeue decision. A start that the time limit stopped (exit 3) is requeued as long as it
// finished a trial (done or failed, counted in this start's own ledgers: the worker id names
// job, array task and restart); after `max_stalls` starts in a row that finished none, or
// `max_requeues` requeues in all (a safety net), the job gives up and says so in
// slurm/gave-up, which `mpq status` prints with the command that continues the sweep.
std::string supervise(const std::string& command, const std::string& key,
                      const std::string& requeue_target, const SubmitOptions& o, long long grace) {
  const std::string cap = std::to_string(o.max_requeues), stalls = std::to_string(o.max_stalls);
  return R"SH(
# SIGUSR1 (time limit near) and SIGTERM (scancel, preemption) go to the batch shell only; pass
# them on. mpq exits with 3 when it stopped early for the time limit: then requeue this job if
# this start finished a trial (or fewer than )SH" +
         stalls + R"SH( starts in a row finished none), at most )SH" + cap +
         R"SH( times.
KEY=)SH" +
         key +
         R"SH(
RESTART=${SLURM_RESTART_COUNT:-0}
rm -f "$DIR/slurm/gave-up"
)SH" + command +
         R"SH( &
child=$!
trap 'kill -USR1 $child 2>/dev/null' USR1
trap 'kill -TERM $child 2>/dev/null' TERM
rc=0
while :; do
  wait $child; rc=$?
  kill -0 $child 2>/dev/null || break   # wait was interrupted by a trapped signal
done
if [ $rc -eq 3 ]; then
  finished=$(cat "$DIR"/ledgers/*-slurm-"$KEY"-r"$RESTART"-*.jsonl 2>/dev/null |
             grep -c -E '"event":"(done|failed)"')
  stalls=0
  [ "$finished" -gt 0 ] || stalls=$(( $(cat "$DIR/slurm/stalls-$KEY" 2>/dev/null || echo 0) + 1 ))
  echo $stalls >"$DIR/slurm/stalls-$KEY"
  why=""
  if [ $stalls -ge )SH" +
         stalls + R"SH( ]; then
    why="$stalls start(s) in a row finished no trial: a trial needs more than the )SH" +
         o.time + " limit less USR1's " + std::to_string(grace) + R"SH( s"
  elif [ $RESTART -ge )SH" +
         cap + R"SH( ]; then
    why=")SH" +
         cap +
         R"SH( requeues used (--max-requeues)"
  fi
  if [ -z "$why" ]; then
    echo "mpq: time limit near: requeueing $KEY (restart $RESTART, $finished trial(s) finished in this start)"
    scontrol requeue )SH" +
         requeue_target + R"SH(
  else
    echo "mpq: time limit near, not requeueing: $why"
    echo "job $KEY gave up after $((RESTART + 1)) start(s) on $(date -u +%FT%TZ): $why" >"$DIR/slurm/gave-up"
  fi
fi
exit $rc
)SH";
}

struct Paths {
  std::string mpq, sweep_copy, sweep_dir, slurm_dir, logs, cwd;
};

std::string header(const std::string& name, const std::string& what, const std::string& reuse,
                   const SubmitOptions& o, long long grace, const Paths& p) {
  std::string s = "#!/bin/bash\n# mpq sweep '" + name + "': " + what +
                  "\n# Written by `mpq slurm submit` on " + utc_now_iso() + ". " + reuse + "\n";
  s += sbatch_line("--job-name=mpq-" + name);
  s += sbatch_line("--time=" + o.time);
  s += sbatch_line("--signal=B:USR1@" + std::to_string(grace));
  s += sbatch_line("--requeue");
  s += sbatch_line("--open-mode=append");
  s += sbatch_line("--chdir=" + p.cwd);
  if (!o.partition.empty()) s += sbatch_line("--partition=" + o.partition);
  if (!o.account.empty()) s += sbatch_line("--account=" + o.account);
  for (const auto& a : o.sbatch_args) s += sbatch_line(a);
  return s;
}

std::string env_block(const Paths& p) {
  return "set -u\nMPQ=" + p.mpq + "\nSWEEP=" + p.sweep_copy + "\nDIR=" + p.sweep_dir +
         "\nif [ \"$(id -u)\" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 "
         "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi\n"
         "echo \"mpq: job ${SLURM_JOB_ID} ${SLURM_ARRAY_JOB_ID:+array "
         "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} }"
         "restart ${SLURM_RESTART_COUNT:-0} on $(hostname)\"\n";
}

void write_script(const std::string& path, const std::string& text) {
  AtomicFile out(path);
  {
    std::ofstream o(out.tmp());
    if (!o) throw InputError(path + ": cannot write batch script");
    o << text;
    o.close();
    if (!o) throw InputError(path + ": cannot write batch script (disk full?)");
  }
  fs::permissions(out.tmp(), fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::add);
  out.commit();
}

std::string sbatch(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"sbatch", "--parsable"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_program(argv);
  if (r.exit_code != 0) {
    std::string e = r.err.empty() ? r.out : r.err;
    while (!e.empty() && (e.back() == '\n' || e.back() == '\r')) e.pop_back();
    throw InputError("sbatch refused " + args.back() + ": " + e.substr(0, e.find('\n')));
  }
  std::string id = r.out.substr(0, r.out.find_first_of(";\n"));
  return id;
}

void record_job(const std::string& slurm_dir, const json& j) {
  std::ofstream o(slurm_dir + "/jobs.jsonl", std::ios::app);
  json r = j;
  r["time"] = utc_now_iso();
  o << r.dump() << "\n";
}

// Warns when the time limit less the signal lead leaves less work time per start than a typical
// trial of this sweep: the median time of the trials already finished in its directory (a
// resubmission, or a sweep run locally first). "" when it fits or nothing has run yet.
std::string short_limit_warning(const store::SweepDir& dir, const SubmitOptions& o, long long limit,
                                long long grace) {
  const double typical = sweep::median_trial_seconds(dir);
  const long long window = limit - grace;
  if (typical <= 0 || typical < window) return "";
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "--time %s with USR1 %lld s before it leaves %lld s of work per start, less than "
                "a typical trial of this sweep (%.0f s, the median of those finished): starts may "
                "finish nothing and the job gives up after %d such starts; ask for a longer "
                "--time",
                o.time.c_str(), grace, window, typical, o.max_stalls);
  return buf;
}

}  // namespace

SubmitResult submit(const std::string& sweep_file, const SubmitOptions& o) {
  // Everything that can be wrong is checked before anything is written or submitted.
  const sweep::SweepSpec spec = sweep::load_sweep(sweep_file, o.overrides);
  if (o.mode != "array" && o.mode != "mpi")
    throw ConfigError("--mode " + o.mode + ": must be \"mpi\" or \"array\"");
  const bool array_mode = o.mode == "array";  // the one comparison: the rest asks this
  const long long limit = parse_slurm_time(o.time);
  if (o.nodes < 1 || o.ntasks_per_node < 1 || o.cpus_per_task < 1 || o.array_tasks < 1 ||
      o.max_concurrent < 0 || o.max_requeues < 0 || o.max_stalls < 1)
    throw ConfigError(
        "--nodes, --ntasks-per-node, --cpus-per-task, --array-tasks, --max-stalls must be >= 1 "
        "(--max-concurrent, --max-requeues >= 0)");
  long long grace =
      o.signal_seconds > 0 ? o.signal_seconds : std::min(300LL, std::max(30LL, limit / 10));
  if (grace >= limit)
    throw ConfigError("--signal-seconds " + std::to_string(grace) + " is not below --time " +
                      o.time);
  if (!o.dry_run && find_in_path("sbatch").empty())
    throw InputError(
        "sbatch not found in PATH: not a Slurm client host (install slurm-client, or "
        "use --dry-run to see the scripts)");

  Paths p;
  p.mpq = self_executable();
  p.cwd = fs::current_path().string();
  store::SweepDir dir(spec.run.results_dir + "/" + spec.name);
  const std::string warning = short_limit_warning(dir, o, limit, grace);
  p.sweep_dir = absolute(dir.dir());
  p.slurm_dir = absolute(dir.slurm_dir());
  p.logs = p.slurm_dir + "/logs";
  p.sweep_copy = p.slurm_dir + "/sweep.json";
  SubmitResult r;
  r.warning = warning;
  r.slurm_dir = p.slurm_dir;

  std::map<std::string, std::string> scripts;  // file name -> text (in submission order below)
  const std::string worker_threads = std::to_string(o.cpus_per_task);
  if (array_mode) {
    std::string prep =
        header(spec.name, "preparation (default models, fingerprints, plan)",
               "Reusable: idempotent, cheap when everything is cached.", o, grace, p);
    prep += sbatch_line("--ntasks=1");
    prep += sbatch_line("--cpus-per-task=" + worker_threads);
    prep += sbatch_line("--output=" + p.logs + "/%x-prepare-%j.out");
    prep += env_block(p) + "exec \"$MPQ\" sweep prepare \"$SWEEP\"\n";
    scripts["prepare.sbatch"] = prep;
    std::string arr = header(spec.name, std::to_string(o.array_tasks) + " array workers",
                             "Reusable: sbatch this file again to add workers.", o, grace, p);
    arr += sbatch_line("--array=0-" + std::to_string(o.array_tasks - 1) +
                       (o.max_concurrent > 0 ? "%" + std::to_string(o.max_concurrent) : ""));
    arr += sbatch_line("--ntasks=1");
    arr += sbatch_line("--cpus-per-task=" + worker_threads);
    arr += sbatch_line("--output=" + p.logs + "/%x-%A_%a.out");
    arr += env_block(p);
    arr += supervise("\"$MPQ\" sweep work \"$SWEEP\" --stop-grace " + std::to_string(grace),
                     "\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"",
                     "\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"", o, grace);
    scripts["array.sbatch"] = arr;
  } else {
    std::string mpi =
        header(spec.name, "MPI job", "Reusable: sbatch it again to resume.", o, grace, p);
    mpi += sbatch_line("--nodes=" + std::to_string(o.nodes));
    mpi += sbatch_line("--ntasks-per-node=" + std::to_string(o.ntasks_per_node));
    mpi += sbatch_line("--cpus-per-task=" + worker_threads);
    mpi += sbatch_line("--output=" + p.logs + "/%x-%j.out");
    mpi += env_block(p);
    mpi += supervise("mpirun --oversubscribe -np \"$SLURM_NTASKS\" \"$MPQ\" sweep run \"$SWEEP\"",
                     "\"$SLURM_JOB_ID\"", "\"$SLURM_JOB_ID\"", o, grace);
    scripts["mpi.sbatch"] = mpi;
  }

  if (o.dry_run) {
    for (const auto& [name, text] : scripts)
      r.dry_run_text += "# ---- " + p.slurm_dir + "/" + name + " ----\n" + text + "\n";
    r.dry_run_text +=
        "# submission: " +
        std::string(array_mode ? "sbatch prepare.sbatch; sbatch --dependency=afterok:<prepare "
                                 "job> array.sbatch"
                               : "sbatch mpi.sbatch") +
        "\n";
    return r;
  }

  // The directory (sweep.json records the config; a different sweep under this name is refused).
  std::error_code ec;
  fs::create_directories(spec.run.results_dir, ec);
  dir.init(spec.document, sweep::sweep_fingerprint(spec.document), false);
  fs::create_directories(p.logs, ec);
  if (ec) throw InputError(p.logs + ": cannot create (" + ec.message() + ")");
  write_file_atomic(p.sweep_copy, spec.document.dump(2) + "\n");
  for (const auto& [name, text] : scripts) {
    write_script(p.slurm_dir + "/" + name, text);
    r.scripts.push_back(p.slurm_dir + "/" + name);
  }
  if (array_mode) {
    const std::string prep = sbatch({p.slurm_dir + "/prepare.sbatch"});
    record_job(p.slurm_dir, {{"kind", "prepare"}, {"job", prep}, {"script", "prepare.sbatch"}});
    r.jobs.push_back({"prepare", prep});
    const std::string arr = sbatch({"--dependency=afterok:" + prep, p.slurm_dir + "/array.sbatch"});
    record_job(p.slurm_dir, {{"kind", "array"},
                             {"job", arr},
                             {"script", "array.sbatch"},
                             {"tasks", o.array_tasks},
                             {"after", prep}});
    r.jobs.push_back({"array", arr});
  } else {
    const std::string id = sbatch({p.slurm_dir + "/mpi.sbatch"});
    record_job(p.slurm_dir, {{"kind", "mpi"},
                             {"job", id},
                             {"script", "mpi.sbatch"},
                             {"nodes", o.nodes},
                             {"ntasks_per_node", o.ntasks_per_node}});
    r.jobs.push_back({"mpi", id});
  }
  return r;
}

namespace {

std::vector<json> recorded_jobs(const std::string& sweep_dir) {
  std::vector<json> v;
  std::ifstream in(sweep_dir + "/slurm/jobs.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    try {
      v.push_back(json::parse(line));
    } catch (const std::exception&) {
    }
  }
  return v;
}

// The lines of squeue/sacct output in "a|b|c" form, split into fields.
std::vector<std::vector<std::string>> pipe_rows(const std::string& out) {
  std::vector<std::vector<std::string>> rows;
  std::stringstream ss(out);
  std::string line;
  while (std::getline(ss, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string x;
    while (std::getline(ls, x, '|')) f.push_back(x);
    rows.push_back(std::move(f));
  }
  return rows;
}

}  // namespace

std::string jobs_table(const std::string& sweep_dir) {
  auto jobs = recorded_jobs(sweep_dir);
  if (jobs.empty()) return "";
  report::Table t({"job", "kind", "state", "time", "reason / node"});
  for (const auto& j : jobs) {
    const std::string id = j.value("job", "");
    const std::string kind = j.value("kind", "");
    bool found = false;
    auto q = run_program({"squeue", "-h", "-j", id, "-o", "%i|%T|%M|%R"});
    if (q.exit_code == 0) {
      for (const auto& f : pipe_rows(q.out)) {
        if (f.size() < 4) continue;
        t.add_row({f[0], kind, f[1], f[2], f[3]});
        found = true;
      }
    }
    if (found) continue;
    // Left the queue: accounting knows how it ended, if there is accounting.
    auto a = run_program({"sacct", "-n", "-P", "-X", "-j", id, "-o", "JobID,State,Elapsed"});
    if (a.exit_code == 0 && !a.out.empty()) {
      for (const auto& f : pipe_rows(a.out))
        if (f.size() >= 3) t.add_row({f[0], kind, f[1], f[2], ""});
    } else {
      t.add_row({id, kind, "not queued", "",
                 q.exit_code == 0 ? "finished (no accounting: final state unknown)"
                                  : "squeue failed: " + q.err.substr(0, q.err.find('\n'))});
    }
  }
  return t.markdown();
}

std::string gave_up_line(const std::string& sweep_dir) {
  std::ifstream in(sweep_dir + "/slurm/gave-up");
  std::string line;
  if (!in || !std::getline(in, line) || line.empty()) return "";
  return "Slurm " + line + ". Continue it with: mpq slurm submit " + sweep_dir +
         "/slurm/sweep.json --time <longer limit>  (or sbatch " + sweep_dir +
         "/slurm/<script>.sbatch again)";
}

std::vector<std::string> cancel(const std::string& sweep_dir) {
  std::vector<std::string> ids;
  for (const auto& j : recorded_jobs(sweep_dir)) ids.push_back(j.value("job", ""));
  if (ids.empty()) return ids;
  std::vector<std::string> argv = {"scancel"};
  argv.insert(argv.end(), ids.begin(), ids.end());
  auto r = run_program(argv);
  if (r.exit_code != 0) throw InputError("scancel failed: " + r.err.substr(0, r.err.find('\n')));
  return ids;
}

}  // namespace mpq::launch
