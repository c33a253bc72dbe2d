// mpq status: done / failed / pending trials of a sweep directory, who holds which claim.
#include <cstdio>
#include <map>

#include "mpq/launch/slurm.h"
#include "mpq/report/table.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/util/error.h"
#include "tools/cli/verb.h"

namespace mpq::cli {
namespace {

// Who holds a claim: the Slurm job (and array task) of the holder, or its worker id, with the
// age of its heartbeat.
std::string holder_text(const store::ClaimInfo& c) {
  const auto& h = c.holder;
  std::string who =
      h.value("slurm_array_job_id", "").empty()
          ? (h.value("slurm_job_id", "").empty() ? h.value("worker", "?")
                                                 : "job " + h.value("slurm_job_id", ""))
          : "job " + h.value("slurm_array_job_id", "") + "_" + h.value("slurm_array_task_id", "");
  if (c.abandoned) return who + " (abandoned: its run was stopped)";
  char age[64];
  std::snprintf(age, sizeof age, " (%s, heartbeat %.0f s ago)", c.live ? "live" : "stale",
                c.age_seconds);
  return who + age;
}

class Status : public Verb {
 public:
  explicit Status(CLI::App& app)
      : Verb(app.add_subcommand("status", "done / failed / pending trials of a sweep directory")) {
    command_->footer("Examples:\n  mpq status results/default");
    command_->add_option("dir", dir_, "sweep results directory")->required();
    command_->add_flag("--list", list_, "list every trial with its state");
  }

  int run(int*, char***) override {
    store::SweepDir dir(dir_);
    auto st = dir.status(dir.max_attempts());
    std::printf("%s: %zu trials: %d done, %d failed, %d gave up, %d pending, %d running\n",
                dir_.c_str(), st.trials.size(), st.done, st.failed, st.gave_up, st.pending,
                st.running);
    const std::string gave_up = launch::gave_up_line(dir_);
    if (!gave_up.empty() && st.pending + st.failed > 0) std::printf("%s\n", gave_up.c_str());
    if (st.invalid_files)
      std::printf("%d trial file(s) present but invalid (will be redone)\n", st.invalid_files);
    std::map<std::string, std::string> holder;
    for (const auto& c : st.claims) holder[c.trial] = holder_text(c);
    report::Table t({"trial id", "state", "attempts", "claimed by", "settings", "last message"});
    for (const auto& [p, state] : st.trials) {
      if (!list_ && (state == store::TrialState::kDone || state == store::TrialState::kPending))
        continue;
      const auto& h = st.history[p.id];
      t.add_row({p.id.substr(0, 12), store::trial_state_name(state), std::to_string(h.failed),
                 holder.count(p.id) ? holder[p.id] : "", p.settings.dump(), h.last_message});
    }
    if (t.rows()) std::printf("\n%s", t.markdown().c_str());
    const std::string jobs = launch::jobs_table(dir_);
    if (!jobs.empty()) std::printf("\nSlurm jobs (slurm/jobs.jsonl):\n\n%s", jobs.c_str());

    return kExitOk;
  }

 private:
  std::string dir_;
  bool list_ = false;
};

}  // namespace

void add_status(CLI::App& app, Verbs& verbs) {
  verbs.push_back(std::make_unique<Status>(app));
}

}  // namespace mpq::cli
