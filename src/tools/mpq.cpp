// mpq — the command-line interface: builds the app from the verbs (src/tools/cli/, one file per
// verb), parses, runs the chosen verb, and maps its exception to one line and an exit code.
// Exit codes: 0 ok, 1 runtime/input error, 2 usage/config error (docs/cli.md).
#include <cstdio>

#include "mpq/model/network.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/provenance.h"
#include "tools/cli/verb.h"

int main(int argc, char** argv) {
  CLI::App app{
      "mpq: post-training quantization research at cluster scale.\n"
      "Multipoint quantization (Liu et al., AAAI 2021) and baselines on TorchScript models,\n"
      "with results in HDF5. Run `mpq <verb> --help` for each verb's options and examples."};
  app.require_subcommand(1);
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "no progress bars or informational lines");
  app.set_version_flag(
      "--version", [] { return mpq::version_text(); },
      "mpq's version, its LibTorch (and whether CUDA is available), libraries");
  mpq::cli::Verbs verbs;
  for (auto add : {mpq::cli::add_train, mpq::cli::add_inspect, mpq::cli::add_eval,
                   mpq::cli::add_data, mpq::cli::add_quantize, mpq::cli::add_sweep,
                   mpq::cli::add_slurm, mpq::cli::add_status, mpq::cli::add_aggregate,
                   mpq::cli::add_report, mpq::cli::add_score_detections, mpq::cli::add_schema})
    add(app, verbs);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {  // --help and friends included (exit code 0)
    if (e.get_exit_code() == 0) return app.exit(e);
    // One line, like every other error: "mpq: <problem> (see mpq <verb> --help)".
    std::string verb;
    for (const auto* sub : app.get_subcommands()) verb = sub->get_name();
    std::fprintf(stderr, "mpq: %s (see mpq %s%s--help)\n", e.what(), verb.c_str(),
                 verb.empty() ? "" : " ");
    return mpq::kExitUsage;
  }
  mpq::set_quiet(quiet);
  mpq::model::install_warning_handler();
  for (auto& verb : verbs) {
    if (!verb->chosen()) continue;
    try {
      return verb->run(&argc, &argv);
    } catch (...) {
      return mpq::cli::report_error(std::current_exception());
    }
  }
  return mpq::kExitOk;
}
