// mpq — the command-line interface. Parsing and dispatch only: every verb calls into mpq::core.
// Exit codes: 0 ok, 1 runtime/input error, 2 usage/config error (docs/cli.md).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "mpq/data/make_voc.h"
#include "mpq/data/voc.h"
#include "mpq/launch/slurm.h"
#include "mpq/model/network.h"
#include "mpq/report/aggregate.h"
#include "mpq/report/inspect.h"
#include "mpq/report/report.h"
#include "mpq/report/table.h"
#include "mpq/store/data_export.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/store/trial_file.h"
#include "mpq/sweep/mpi_session.h"
#include "mpq/sweep/runner.h"
#include "mpq/sweep/sweep_config.h"
#include "mpq/sweep/trial.h"
#include "mpq/sweep/trial_config.h"
#include "mpq/sweep/worker.h"
#include "mpq/train/train.h"
#include "mpq/util/error.h"
#include "mpq/util/progress.h"
#include "mpq/util/schema.h"
#include "mpq/util/threads.h"

namespace {
using nlohmann::json;

// Options every config-driven verb shares: --config FILE and repeated --set key=value.
struct ConfigArgs {
  std::string config_path;
  std::vector<std::string> sets;
};

void add_config_args(CLI::App* app, ConfigArgs& a) {
  app->add_option("--config", a.config_path, "JSON config file (command-line options override it)");
  app->add_option("--set", a.sets,
                  "override any config key, e.g. --set weights.bits=3 (repeatable)");
}

// --var NAME=VALUE and --set key=value of the sweep verbs (sweep_config.h, SweepOverrides).
void add_sweep_overrides(CLI::App* app, mpq::sweep::SweepOverrides& o) {
  app->add_option("--var", o.vars,
                  "value of a sweep variable, e.g. --var imagenet=/data/imagenet (repeatable)");
  app->add_option("--set", o.sets,
                  "override a key of every trial's config, e.g. --set data.root=/data/imagenet "
                  "(repeatable)");
  app->add_flag("--ignore-fp-check", o.ignore_fp_check,
                "proceed even if the FP model misses its published accuracy (run.fp_check=warn)");
}

// Loads --config, then applies --set overrides, then the verb's explicit flags (`flags`).
json user_config(const ConfigArgs& a, const json& flags) {
  json doc = a.config_path.empty() ? json::object() : mpq::read_json_file(a.config_path);
  if (!doc.is_object())
    throw mpq::ConfigError(a.config_path + ": must contain a JSON object, got " +
                           mpq::describe_value(doc));
  for (const auto& s : a.sets) mpq::apply_override(doc, s);
  for (const auto& [ptr, value] : flags.items()) doc[json::json_pointer(ptr)] = value;
  return doc;
}

std::string source_name(const ConfigArgs& a) {
  return a.config_path.empty() ? std::string("command line") : a.config_path;
}

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> out;
  std::string cur;
  for (char c : text + ",") {
    if (c == ',' || c == 'x') {
      if (cur.empty()) break;
      try {
        out.push_back(std::stoll(cur));
      } catch (const std::exception&) {
        out.clear();
        break;
      }
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (out.size() != 3 || out[0] < 1 || out[1] < 1 || out[2] < 1)
    throw mpq::ConfigError("--input-shape " + text +
                           ": expected C,H,W with positive integers, e.g. 3,224,224");
  return out;
}

// What kind of file `path` is, by its signature: "hdf5", "zip" (TorchScript), or "".
std::string sniff(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  unsigned char b[8] = {0};
  size_t n = std::fread(b, 1, 8, f);
  std::fclose(f);
  if (n == 8 && b[0] == 0x89 && b[1] == 'H' && b[2] == 'D' && b[3] == 'F') return "hdf5";
  if (n >= 2 && b[0] == 'P' && b[1] == 'K') return "zip";
  return "";
}

// Prints the exception as one line ("mpq: <message>") and returns the exit code of its kind.
int report_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const mpq::ConfigError& e) {
    std::fprintf(stderr, "mpq: %s\n", e.what());
    return mpq::kExitUsage;
  } catch (const mpq::InputError& e) {
    std::fprintf(stderr, "mpq: %s\n", e.what());
    return mpq::kExitRuntime;
  } catch (const c10::Error& e) {
    std::string m = e.what_without_backtrace();
    std::fprintf(stderr, "mpq: %s\n", m.substr(0, m.find('\n')).c_str());
    return mpq::kExitRuntime;
  } catch (const std::exception& e) {
    std::string m = e.what();
    std::fprintf(stderr, "mpq: %s\n", m.substr(0, m.find('\n')).c_str());
    return mpq::kExitRuntime;
  } catch (...) {
    std::fprintf(stderr, "mpq: unknown error\n");
    return mpq::kExitRuntime;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "mpq: post-training quantization research at cluster scale.\n"
      "Multipoint quantization (Liu et al., AAAI 2021) and baselines on TorchScript models,\n"
      "with results in HDF5. Run `mpq <verb> --help` for each verb's options and examples."};
  app.require_subcommand(1);
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "no progress bars or informational lines");

  // --- train ---------------------------------------------------------------------------------
  auto* train = app.add_subcommand(
      "train", "train a default model on Fashion-MNIST and save it as TorchScript");
  train->footer(
      "Examples:\n"
      "  mpq train --arch resnet20 --output results/models/resnet20.pt\n"
      "  mpq train --arch mobilenetv2 --epochs 5 --seed 1\n"
      "  mpq train --config configs/train_tiny.json --set train_limit=2000\n"
      "Without --output the model goes to the cache (results/models/<arch>-<key>.pt), which\n"
      "`default:<arch>` model references use (`default:<arch>@seed=N`: the default config with\n"
      "--seed N, e.g. for error bars over independently trained models).");
  ConfigArgs train_cfg;
  add_config_args(train, train_cfg);
  std::string t_arch, t_output, t_root;
  int t_epochs = 0, t_threads = -1;
  long long t_limit = -1, t_test_limit = -1, t_seed = -1;
  double t_width = 0;
  train->add_option("--arch", t_arch, "resnet20 | mobilenetv2 | ssdlite (detector)");
  train->add_option("--epochs", t_epochs, "training epochs (default: resnet20 5, mobilenetv2 4)");
  train->add_option("--width", t_width, "channel multiplier (default 1)");
  train->add_option("--train-limit", t_limit, "train on the first N images (default all)");
  train->add_option("--test-limit", t_test_limit,
                    "report accuracy on the first N test images (default all)");
  train->add_option("--seed", t_seed, "seed (default 0)");
  train->add_option("--threads", t_threads, "threads (default: all cores of this process's share)")
      ->check(CLI::Range(0, 4096));
  train->add_option("--data-root", t_root,
                    "Fashion-MNIST directory (ssdlite: a VOCdevkit directory; default: the "
                    "synthetic one)");
  train->add_option("-o,--output", t_output, "archive to write");

  // --- inspect -------------------------------------------------------------------------------
  auto* inspect =
      app.add_subcommand("inspect", "describe a model's quantizable layers or a trial result file");
  inspect->footer(
      "Examples:\n"
      "  mpq inspect results/models/resnet20-<key>.pt\n"
      "  mpq inspect resnet18_traced.pt --input-shape 3,224,224\n"
      "  mpq inspect results/trial.h5");
  std::string i_path, i_shape;
  bool i_no_fold = false;
  inspect->add_option("file", i_path, "TorchScript archive (.pt) or trial file (.h5)")->required();
  inspect->add_option("--input-shape", i_shape,
                      "C,H,W for MACs (default: from the archive, else 3,224,224)");
  inspect->add_flag("--no-fold-bn", i_no_fold, "do not fold BatchNorm before listing layers");
  bool i_check = false;
  inspect->add_flag("--check-fold", i_check,
                    "compare the prepared (BN-folded) model with the original on random inputs");

  // --- eval ----------------------------------------------------------------------------------
  auto* evalc = app.add_subcommand(
      "eval", "evaluate a full-precision model on a dataset (Fashion-MNIST, ImageNet, folders)");
  evalc->footer(
      "Examples:\n"
      "  mpq eval --model default:resnet20\n"
      "  mpq eval --model results/models/mobilenetv2-<key>.pt --threads 1 --limit 2000\n"
      "  mpq eval --model resnet18.pt --dataset imagenet --data-root /data/imagenet\n"
      "  mpq eval --model resnet50_v2.pt --dataset imagenet --data-root /data/imagenet \\\n"
      "      --set data.preprocess.preset=torchvision-v2 --set data.eval_subset=5000\n"
      "Data keys (data.*) are the trial config's: docs/configs.md, docs/datasets.md.");
  ConfigArgs e_cfg;
  add_config_args(evalc, e_cfg);
  std::string e_model, e_root, e_dataset;
  long long e_limit = -1, e_batch = 0;
  int e_threads = -1;
  bool e_no_fold = false;
  evalc->add_option("--model", e_model,
                    "TorchScript archive or default:<arch> (default "
                    "default:resnet20)");
  evalc->add_option("--dataset", e_dataset, "fashion-mnist | imagenet | image_folder");
  evalc->add_option("--data-root", e_root, "dataset directory");
  evalc->add_option("--limit", e_limit, "first N evaluation images (0 = all)")
      ->check(CLI::NonNegativeNumber);
  evalc->add_option("--batch-size", e_batch, "batch size")->check(CLI::PositiveNumber);
  evalc->add_option("--threads", e_threads, "threads (0 = all cores of this process's share)")
      ->check(CLI::Range(0, 4096));
  evalc->add_flag("--no-fold-bn", e_no_fold, "evaluate without folding BatchNorm");
  std::string e_logits;
  evalc->add_option("--save-logits", e_logits,
                    "also write the model outputs (logits, or detections), labels and paths to "
                    "this HDF5 file");

  // --- data make-voc ---------------------------------------------------------------------------
  std::string v_out;
  long long v_trainval = 2000, v_test = 500, v_seed = 0;
  // (registered below, after `data`)

  // --- data export -----------------------------------------------------------------------------
  auto* datac = app.add_subcommand("data", "datasets: see what the model sees");
  datac->require_subcommand(1);
  auto* dexport = datac->add_subcommand(
      "export", "write the preprocessed images of a split to HDF5 (/images, /labels, /paths)");
  dexport->footer(
      "Examples:\n"
      "  mpq data export --set data.name=imagenet --set data.root=/data/imagenet -o val.h5 "
      "--limit 100\n"
      "  mpq data export --config configs/trials/rtn_w4.json --split train -o train.h5\n"
      "/images holds float32 [N, C, H, W], bit for bit the tensors the model gets.");
  auto* dmake = datac->add_subcommand(
      "make-voc", "write a synthetic PASCAL VOC dataset (Fashion-MNIST objects on canvases)");
  dmake->footer(
      "Examples:\n"
      "  mpq data make-voc -o results/data/my-voc --trainval 500 --test 100\n"
      "  mpq eval --model default:ssdlite --dataset voc --data-root results/data/my-voc/VOCdevkit\n"
      "Real JPEGs, VOC XML annotations (20 classes, difficult/truncated flags) and ImageSets,\n"
      "generated deterministically from the seed (docs/detection.md). Without --data-root,\n"
      "--dataset voc uses the default one (results/data/voc-fmnist, generated on first use).");
  dmake
      ->add_option("-o,--output", v_out, "output directory (VOCdevkit/VOC2007 is written below it)")
      ->required();
  dmake->add_option("--trainval", v_trainval, "trainval images")
      ->capture_default_str()
      ->check(CLI::Range(2, 10000000));
  dmake->add_option("--test", v_test, "test images")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  dmake->add_option("--seed", v_seed, "seed")->capture_default_str()->check(CLI::NonNegativeNumber);
  ConfigArgs x_cfg;
  add_config_args(dexport, x_cfg);
  std::string x_output, x_split;
  long long x_limit = 0;
  int x_threads = -1;
  dexport->add_option("-o,--output", x_output, "HDF5 file to write")->required();
  dexport->add_option("--limit", x_limit, "first N images (0 = all)")
      ->check(CLI::NonNegativeNumber);
  dexport->add_option("--split", x_split,
                      "split to export (default: the evaluation split, with data.eval_subset / "
                      "eval_limit applied)");
  dexport->add_option("--threads", x_threads, "decoding threads (0 = all cores)")
      ->check(CLI::Range(0, 4096));

  // --- quantize ------------------------------------------------------------------------------
  auto* quantize =
      app.add_subcommand("quantize", "run one quantization trial and write its HDF5 result");
  quantize->footer(
      "Examples:\n"
      "  mpq quantize --model default:resnet20 --bits 4 --granularity per_layer -o "
      "results/r20_w4.h5\n"
      "  mpq quantize --config configs/trials/rtn_w4.json --set weights.bits=3 -o results/w3.h5\n"
      "  mpq quantize --model default:mobilenetv2 --method multipoint --bits 4 --granularity "
      "per_layer \\\n"
      "      --set weights.multipoint.budget=0.1 -o results/mp.h5 --export results/mp_expanded.pt\n"
      "  mpq quantize --model default:resnet20 --method multipoint --bits 4 --set "
      "activations.bits=8 "
      "\\\n      -o results/mp_a8.h5 --export-int8 results/mp_int8.pt   # on int8 kernels\n"
      "Every config key is listed in docs/configs.md; --set overrides --config, and the flags "
      "(--method, --bits, ...) override both (docs/cli.md).");
  ConfigArgs q_cfg;
  add_config_args(quantize, q_cfg);
  std::string q_model, q_method, q_gran, q_output, q_export, q_export_int8, q_dataset, q_root;
  int q_bits = 0, q_threads = -1;
  quantize->add_option("--model", q_model, "TorchScript archive or default:<arch>");
  quantize->add_option("--method", q_method,
                       "weight method: rtn | mse | aciq | percentile | ocs | bit_alloc | gptq | adaround | "
                       "multipoint");
  quantize->add_option("--bits", q_bits, "weight bits in [2, 8]");
  quantize->add_option("--dataset", q_dataset, "fashion-mnist | imagenet | image_folder");
  quantize->add_option("--data-root", q_root, "dataset directory");
  quantize->add_option("--granularity", q_gran, "per_channel | per_layer");
  quantize->add_option("--threads", q_threads, "threads (0 = all cores of this process's share)")
      ->check(CLI::Range(0, 4096));
  quantize->add_option("-o,--output", q_output, "trial HDF5 file to write");
  quantize->add_option("--export", q_export,
                       "also write the deployable expanded TorchScript model");
  quantize->add_option("--export-int8", q_export_int8,
                       "also write the model on LibTorch's int8 kernels (needs activations.bits "
                       "<= 8)");
  std::string q_logits;
  quantize->add_option("--save-logits", q_logits,
                       "also write the quantized model's outputs per image (logits or "
                       "detections), labels and paths to this HDF5 file");

  // --- sweep plan / sweep run ----------------------------------------------------------------
  auto* sweep =
      app.add_subcommand("sweep", "expand a JSON sweep into trials and run them on MPI ranks");
  sweep->require_subcommand(1);
  auto* plan =
      sweep->add_subcommand("plan", "print the trials a sweep expands to, without running them");
  plan->footer(
      "Examples:\n"
      "  mpq sweep plan configs/sweeps/default.json\n"
      "Trial ids need the model files: default models are trained (and cached) first if missing.");
  std::string p_file;
  plan->add_option("sweep", p_file, "sweep JSON file")->required();
  mpq::sweep::SweepOverrides p_over, r_over, pp_over, w_over;
  add_sweep_overrides(plan, p_over);
  auto* run =
      sweep->add_subcommand("run", "run (or resume) a sweep; trial-parallel over MPI ranks");
  run->footer(
      "Examples:\n"
      "  mpirun -np 2 mpq sweep run configs/sweeps/default.json\n"
      "  mpq sweep run configs/sweeps/default.json          # one process, no mpirun\n"
      "Re-running the same command resumes: done trials are skipped, failed ones retried up to\n"
      "run.max_attempts, interrupted ones redone. Results: <run.results_dir>/<name>/.");
  std::string r_file;
  bool r_force = false, r_aggregate = false;
  run->add_option("sweep", r_file, "sweep JSON file")->required();
  add_sweep_overrides(run, r_over);
  run->add_flag("--force", r_force,
                "reuse a results directory that holds a different sweep config");
  run->add_flag("--aggregate", r_aggregate, "print the aggregate table when done (rank 0)");
  double r_simulate = -1;
  run->add_option("--simulate-trial-seconds", r_simulate,
                  "benchmarks of the scheduler and store only: sleep instead of computing, write "
                  "a minimal trial file");

  auto* prepare = sweep->add_subcommand(
      "prepare", "prepare a sweep directory once: default models, fingerprints, plan.json");
  prepare->footer(
      "Examples:\n"
      "  mpq sweep prepare configs/sweeps/default.json\n"
      "What `mpq slurm submit` runs before an array's workers (they would otherwise wait for\n"
      "whichever prepares first). Idempotent and cheap when everything is cached.");
  std::string pp_file;
  bool pp_force = false;
  prepare->add_option("sweep", pp_file, "sweep JSON file")->required();
  add_sweep_overrides(prepare, pp_over);
  prepare->add_flag("--force", pp_force, "reuse a results directory that holds a different sweep");

  auto* work = sweep->add_subcommand(
      "work", "one independent worker (no MPI): claim and run trials until none is left");
  work->footer(
      "Examples:\n"
      "  mpq sweep work configs/sweeps/default.json &   # as many as you like, on any hosts\n"
      "  mpq sweep work sweep.json --stop-grace 120     # what Slurm array tasks run\n"
      "Workers share the results directory through per-trial claims with leases "
      "(run.lease_seconds):\n"
      "a killed worker's trials are taken over once its claims expire. SIGUSR1: stop claiming,\n"
      "finish the current trial if the --stop-grace seconds allow, else hand it back; exit 3.\n"
      "SIGTERM: release every claim and exit 143.");
  std::string w_file;
  double w_grace = 0, w_simulate = -1;
  int w_max = 0;
  bool w_force = false;
  work->add_option("sweep", w_file, "sweep JSON file")->required();
  add_sweep_overrides(work, w_over);
  work->add_option("--stop-grace", w_grace,
                   "seconds between SIGUSR1 and the time limit (0 = always finish the trial)")
      ->check(CLI::NonNegativeNumber);
  work->add_option("--max-trials", w_max, "stop after N trials (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  work->add_option("--simulate-trial-seconds", w_simulate,
                   "benchmarks of the store only: sleep instead of computing, write a minimal "
                   "trial file");
  work->add_flag("--force", w_force, "reuse a results directory that holds a different sweep");

  // --- slurm ---------------------------------------------------------------------------------
  auto* slurm = app.add_subcommand("slurm", "launch sweeps on Slurm: MPI jobs or job arrays");
  slurm->require_subcommand(1);
  auto* submit = slurm->add_subcommand(
      "submit", "validate a sweep, write its batch scripts, submit them with sbatch");
  submit->footer(
      "Examples:\n"
      "  mpq slurm submit configs/sweeps/voc.json --array-tasks 8 --time 02:00:00\n"
      "  mpq slurm submit sweep.json --mode mpi --nodes 2 --ntasks-per-node 4 --cpus-per-task 8\n"
      "  mpq slurm submit sweep.json --dry-run          # print the scripts, submit nothing\n"
      "Scripts go to <results_dir>/<sweep>/slurm/ (reusable), job ids to slurm/jobs.jsonl.\n"
      "Jobs ask for --signal=B:USR1@<grace> and --requeue: near the time limit workers hand\n"
      "their trials back and requeue (at most --max-requeues times). Submitting again after an\n"
      "interruption runs only what is left. See slurm/README.md.");
  mpq::launch::SubmitOptions so_slurm;
  std::string sl_file;
  submit->add_option("sweep", sl_file, "sweep JSON file")->required();
  add_sweep_overrides(submit, so_slurm.overrides);
  submit->add_option("--mode", so_slurm.mode, "array (independent workers) | mpi (one allocation)")
      ->capture_default_str();
  submit->add_option("--nodes", so_slurm.nodes, "mpi mode: nodes")->capture_default_str();
  submit->add_option("--ntasks-per-node", so_slurm.ntasks_per_node, "mpi mode: MPI ranks per node")
      ->capture_default_str();
  submit->add_option("--cpus-per-task", so_slurm.cpus_per_task, "threads per rank / worker")
      ->capture_default_str();
  submit->add_option("--time", so_slurm.time, "time limit per job (Slurm format)")
      ->capture_default_str();
  submit->add_option("--partition", so_slurm.partition, "Slurm partition");
  submit->add_option("--account", so_slurm.account, "Slurm account");
  submit->add_option("--array-tasks", so_slurm.array_tasks, "array mode: workers")
      ->capture_default_str();
  submit->add_option("--max-concurrent", so_slurm.max_concurrent,
                     "array mode: at most M workers at once (0 = no limit)");
  submit->add_option("--sbatch-arg", so_slurm.sbatch_args,
                     "extra sbatch option for the scripts, e.g. --sbatch-arg=--qos=short "
                     "(repeatable)");
  submit->add_option("--signal-seconds", so_slurm.signal_seconds,
                     "USR1 this long before the time limit (default: a tenth of it, 30..300 s)");
  submit->add_option("--max-requeues", so_slurm.max_requeues, "requeues after time limits")
      ->capture_default_str();
  submit->add_flag("--dry-run", so_slurm.dry_run, "print the scripts, submit nothing");
  auto* scancel = slurm->add_subcommand("cancel", "scancel every job recorded for a sweep");
  scancel->footer("Examples:\n  mpq slurm cancel results/voc");
  std::string sc_dir;
  scancel->add_option("dir", sc_dir, "sweep results directory")->required();

  // --- status --------------------------------------------------------------------------------
  auto* status =
      app.add_subcommand("status", "done / failed / pending trials of a sweep directory");
  status->footer("Examples:\n  mpq status results/default");
  std::string s_dir;
  bool s_list = false;
  status->add_option("dir", s_dir, "sweep results directory")->required();
  status->add_flag("--list", s_list, "list every trial with its state");

  // --- aggregate -----------------------------------------------------------------------------
  auto* aggregate = app.add_subcommand(
      "aggregate", "tables (Markdown, CSV) and a merged trials.csv/.h5 of a sweep");
  aggregate->footer(
      "Examples:\n"
      "  mpq aggregate results/default\n"
      "  mpq aggregate results/default --pivot model.path,label:weights.bits:top1\n"
      "  mpq aggregate results/model_seeds --pool-model-seeds --format latex --bold-best\n"
      "Files go to <dir>/aggregate/: summary.md/.csv, trials.csv/.h5, failed.csv, "
      "pivot<i>.md/.csv (and summary.tex, pivot<i>.tex with --format latex).");
  std::string a_dir, a_format = "markdown";
  std::vector<std::string> a_pivots, a_metrics;
  bool a_pool = false, a_bold = false;
  aggregate->add_option("dir", a_dir, "sweep results directory")->required();
  aggregate->add_option(
      "--pivot", a_pivots,
      "ROWS:COLUMN[:METRIC], e.g. model.path,label:weights.bits:top1 (repeatable; METRIC "
      "defaults to the trials' headline: top1, or map_voc07 / map_voc12 for detection as "
      "eval.voc_metric says)");
  aggregate->add_option(
      "--metrics", a_metrics,
      "metrics of the summary table (default: classification top1 agreement kl "
      "extra_channels_pct; detection the headline mAP, the other mAP, fidelity_map "
      "extra_channels_pct)");
  aggregate
      ->add_option("--format", a_format,
                   "what to print: markdown, or latex (booktabs tables, also written as .tex)")
      ->check(CLI::IsMember({"markdown", "latex"}));
  aggregate->add_flag("--bold-best", a_bold,
                      "LaTeX: the best value of every metric column in bold");
  aggregate->add_flag("--pool-model-seeds", a_pool,
                      "treat default:<arch>@seed=N models as replicates of default:<arch> (error "
                      "bars over training and calibration seeds)");

  // --- report --------------------------------------------------------------------------------
  auto* report = app.add_subcommand(
      "report", "figures (PNG, SVG, CSV), tables and conventions of a sweep: report.md and .html");
  report->footer(
      "Examples:\n"
      "  mpq report results/default\n"
      "  mpq report results/baselines --overhead channels\n"
      "  mpq report results/model_seeds --pool-model-seeds\n"
      "Writes <dir>/report/: report.md, report.html, and per figure NAME.png, NAME.svg, the data\n"
      "NAME.csv and the gnuplot script NAME.gp (re-plot with: cd <dir>/report && gnuplot "
      "NAME.gp).\n"
      "See docs/report.md.");
  std::string rp_dir, rp_overhead = "macs", rp_metric;
  bool rp_pool = false;
  int rp_bits = 0;
  report->add_option("dir", rp_dir, "sweep results directory")->required();
  report->add_option("--overhead", rp_overhead, "x axis of the trade-off figures")
      ->check(CLI::IsMember({"macs", "channels", "weight_bits"}))
      ->capture_default_str();
  report->add_option("--metric", rp_metric, "y axis (default: the trials' headline: top1, or map_voc07 / map_voc12 for "
                     "detection as eval.voc_metric says)");
  report->add_flag(
      "--pool-model-seeds", rp_pool,
      "error bars over independently trained default models too (default:<arch>@seed=N)");
  report
      ->add_option("--detail-bits", rp_bits,
                   "weight bits of the per-layer multipoint figures (default: 4 if present, "
                   "else the lowest)")
      ->check(CLI::Range(0, 8));

  // --- score-detections ------------------------------------------------------------------------
  auto* scored = app.add_subcommand(
      "score-detections", "VOC mAP of saved detections (a trial file's, or any [M, 7] table)");
  scored->footer(
      "Examples:\n"
      "  mpq score-detections results/voc/trials/<id>.h5 --iou 0.7\n"
      "  mpq score-detections dets.h5 --set data.name=voc --set data.root=/data/VOCdevkit\n"
      "A trial file run with eval.save_detections = true carries its detections and config; a\n"
      "plain HDF5 file needs /detections [M, 7] (image position, class, score, x1, y1, x2, y2 in\n"
      "VOC 1-based coordinates) and the dataset from --config/--set.");
  ConfigArgs d_cfg;
  add_config_args(scored, d_cfg);
  std::string d_file;
  double d_iou = 0.5;
  bool d_strict = false, d_json = false;
  scored->add_option("file", d_file, "trial file or detections table (HDF5)")->required();
  scored->add_option("--iou", d_iou, "IoU threshold")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  scored->add_flag("--strict", d_strict,
                   "IoU > threshold (py-faster-rcnn) instead of >= (the devkit)");
  scored->add_flag("--json", d_json, "print the result as JSON (full precision)");

  // --- schema --------------------------------------------------------------------------------
  auto* schema =
      app.add_subcommand("schema", "print every config key of a config kind as a Markdown table");
  schema->footer("Examples:\n  mpq schema trial\n  mpq schema train");
  std::string sc_kind;
  schema->add_option("kind", sc_kind, "trial | train")
      ->required()
      ->check(CLI::IsMember({"trial", "train"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
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

  try {
    if (*train) {
      json flags = json::object();
      if (!t_arch.empty()) flags["/arch"] = t_arch;
      if (t_epochs > 0) flags["/epochs"] = t_epochs;
      if (t_width > 0) flags["/width"] = t_width;
      if (t_limit >= 0) flags["/train_limit"] = t_limit;
      if (t_test_limit >= 0) flags["/test_limit"] = t_test_limit;
      if (t_seed >= 0) flags["/seed"] = t_seed;
      if (t_threads >= 0) flags["/threads"] = t_threads;
      if (!t_root.empty()) flags["/data_root"] = t_root;
      if (!t_output.empty()) flags["/output"] = t_output;
      json resolved =
          mpq::train::train_schema().resolve(user_config(train_cfg, flags), source_name(train_cfg));
      std::string output;
      auto cfg = mpq::train::train_config_from_json(resolved, &output);
      auto r = output.empty() ? mpq::train::ensure_cached(cfg, "results/models")
                              : mpq::train::train_model(cfg, output);
      std::printf("%s\ttest_top1=%.4f\ttrain_seconds=%.1f%s\n", r.path.c_str(), r.test_top1,
                  r.seconds, r.from_cache ? "\t(cached)" : "");
    } else if (*inspect) {
      std::string kind = sniff(i_path);
      if (kind == "hdf5") {
        auto rec = mpq::store::read_trial(i_path, false);
        std::fputs(mpq::report::describe_trial(i_path, rec).c_str(), stdout);
      } else {
        mpq::model::LoadOptions lo;
        lo.fold_bn = !i_no_fold;
        if (!i_shape.empty()) lo.input_shape = parse_shape(i_shape);
        mpq::apply_threads(0);
        auto net = mpq::model::Network::load(i_path, lo);
        std::fputs(mpq::report::describe_network(net).c_str(), stdout);
        if (i_check) std::fputs(mpq::report::check_folding(net, 4, nullptr).c_str(), stdout);
      }
    } else if (*evalc) {
      json flags = json::object();
      if (!e_model.empty()) flags["/model/path"] = e_model;
      if (!e_dataset.empty()) flags["/data/name"] = e_dataset;
      if (!e_root.empty()) flags["/data/root"] = e_root;
      if (e_limit >= 0) flags["/data/eval_limit"] = e_limit;
      if (e_batch > 0) flags["/data/batch_size"] = e_batch;
      if (e_threads >= 0) flags["/threads"] = e_threads;
      if (e_no_fold) flags["/model/fold_bn"] = false;
      json doc = user_config(e_cfg, flags);
      // One evaluation reads every image once: no point in writing the image cache unless asked.
      if (!doc.contains("data") || !doc["data"].contains("cache")) doc["data"]["cache"] = false;
      json cfg = mpq::sweep::resolve_trial_config(doc, source_name(e_cfg));
      mpq::sweep::TrialContext ctx;
      json r = mpq::sweep::evaluate_fp(cfg, ctx, e_logits);
      // Fixed order first (what `mpq eval` always printed), then whatever the task adds.
      std::vector<std::string> keys = {
          "model",  "data",    "preprocessing",     "top1",   "top5", "map_voc07", "map_voc12",
          "n_eval", "seconds", "images_per_second", "threads"};
      for (const auto& [k, v] : r.items())
        if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
      for (const auto& k : keys) {
        if (!r.contains(k)) continue;
        const json& v = r[k];
        std::string key = k == "n_eval" ? "images" : k;
        if (v.is_number_float())
          std::printf("%s\t%.4f\n", key.c_str(), v.get<double>());
        else
          std::printf("%s\t%s\n", key.c_str(),
                      v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
      }
    } else if (*dmake) {
      mpq::data::MakeVocOptions o;
      o.trainval = v_trainval;
      o.test = v_test;
      o.seed = static_cast<uint64_t>(v_seed);
      std::string dir = mpq::data::make_voc(v_out, o);
      std::printf("wrote %s (%lld trainval + %lld test images)\n", dir.c_str(), v_trainval, v_test);
    } else if (*dexport) {
      json flags = json::object();
      if (x_threads >= 0) flags["/threads"] = x_threads;
      json cfg = mpq::sweep::resolve_trial_config(user_config(x_cfg, flags), source_name(x_cfg));
      auto tc = mpq::sweep::parse_trial_config(cfg);
      int threads = mpq::apply_threads(tc.threads);
      mpq::sweep::TrialContext ctx;
      std::shared_ptr<const mpq::data::Dataset> d = x_split.empty()
                                                        ? ctx.eval_set(tc.data, false, threads).data
                                                        : ctx.split(tc.data.spec, x_split);
      int64_t n =
          mpq::store::export_dataset(*d, x_limit, x_output, tc.data.loader(threads),
                                     {{"split", x_split.empty() ? tc.data.eval_split : x_split}});
      std::printf("wrote %s: %lld images of %s\n", x_output.c_str(), static_cast<long long>(n),
                  d->describe().c_str());
    } else if (*quantize) {
      json flags = json::object();
      if (!q_model.empty()) flags["/model/path"] = q_model;
      if (!q_method.empty()) flags["/weights/method"] = q_method;
      if (q_bits != 0) flags["/weights/bits"] = q_bits;
      if (!q_gran.empty()) flags["/weights/granularity"] = q_gran;
      if (!q_dataset.empty()) flags["/data/name"] = q_dataset;
      if (!q_root.empty()) flags["/data/root"] = q_root;
      if (q_threads >= 0) flags["/threads"] = q_threads;
      if (!q_output.empty()) flags["/output"] = q_output;
      if (!q_export.empty()) flags["/export"] = q_export;
      if (!q_export_int8.empty()) flags["/export_int8"] = q_export_int8;
      if (!q_logits.empty()) flags["/save_logits"] = q_logits;
      json cfg = mpq::sweep::resolve_trial_config(user_config(q_cfg, flags), source_name(q_cfg));
      mpq::sweep::TrialContext ctx;
      auto out = mpq::sweep::run_trial(cfg, ctx);
      std::printf("trial %s: %s\n", out.record.trial_id.substr(0, 16).c_str(),
                  mpq::sweep::summarize(out.record).c_str());
      if (!out.output_path.empty()) std::printf("wrote %s\n", out.output_path.c_str());
    } else if (*scored) {
      json trial_cfg;
      auto table = mpq::store::read_detections(d_file, &trial_cfg);
      json cfg = trial_cfg.is_null() ? mpq::sweep::resolve_trial_config(
                                           user_config(d_cfg, json::object()), source_name(d_cfg))
                                     : trial_cfg;
      mpq::sweep::TrialContext ctx;
      auto r = mpq::sweep::score_detections(cfg, ctx, table, {d_iou, d_strict});
      const auto& names = mpq::data::voc_classes();
      if (d_json) {
        std::printf("%s\n", json{{"map_voc07", r.map07},
                                 {"map_voc12", r.map12},
                                 {"ap_voc07", r.ap07},
                                 {"ap_voc12", r.ap12},
                                 {"positives", r.positives}}
                                .dump()
                                .c_str());
      } else {
        std::printf("map_voc07\t%.6f\nmap_voc12\t%.6f\n\n", r.map07, r.map12);
        mpq::report::Table t({"class", "AP VOC07", "AP VOC12", "positives", "detections"});
        for (size_t c = 0; c < r.ap07.size(); ++c)
          t.add_row({c < names.size() ? names[c] : std::to_string(c),
                     mpq::report::format("%.4f", r.ap07[c]), mpq::report::format("%.4f", r.ap12[c]),
                     std::to_string(r.positives[c]), std::to_string(r.detections[c])});
        std::fputs(t.markdown().c_str(), stdout);
      }
    } else if (*schema) {
      std::fputs((sc_kind == "trial" ? mpq::sweep::trial_schema() : mpq::train::train_schema())
                     .markdown()
                     .c_str(),
                 stdout);
    } else if (*plan) {
      mpq::apply_threads(0);
      auto spec = mpq::sweep::load_sweep(p_file, p_over);
      auto trials = mpq::sweep::plan_trials(spec);
      mpq::report::Table t({"#", "trial id", "settings"});
      for (size_t i = 0; i < trials.size(); ++i)
        t.add_row({std::to_string(i), trials[i].id.substr(0, 16), trials[i].settings.dump()});
      std::printf("sweep %s: %zu trials -> %s/%s\n\n%s", spec.name.c_str(), trials.size(),
                  spec.run.results_dir.c_str(), spec.name.c_str(), t.markdown().c_str());
    } else if (*run) {
      mpq::sweep::MpiSession mpi(&argc, &argv);
      if (mpi.rank() != 0) mpq::set_quiet(true);
      mpq::sweep::SweepSpec spec;
      std::string load_error;
      int load_code = 0;
      try {
        spec = mpq::sweep::load_sweep(r_file, r_over);
      } catch (const mpq::ConfigError& e) {
        load_error = e.what(), load_code = mpq::kExitUsage;
      } catch (const mpq::InputError& e) {
        load_error = e.what(), load_code = mpq::kExitRuntime;
      }
      if (load_code != 0) {  // every rank read the same file; only rank 0 reports
        if (mpi.rank() == 0) std::fprintf(stderr, "mpq: %s\n", load_error.c_str());
        return load_code;
      }
      mpq::sweep::SweepOptions so;
      so.force = r_force;
      so.simulate_seconds = r_simulate;
      mpq::sweep::SweepResult res;
      try {
        res = mpq::sweep::run_sweep(spec, so, mpi.rank(), mpi.size());
      } catch (const mpq::sweep::SilentExit& e) {
        return e.code;
      } catch (...) {
        // Report before MPI_Finalize (which would wait for the other ranks forever), then take
        // the other ranks down with this one.
        int code = report_error(std::current_exception());
        if (mpi.size() > 1) mpq::sweep::mpi_abort(code);
        return code;
      }
      if (mpi.rank() == 0) {
        const auto& st = res.final_status;
        std::printf(
            "sweep %s: %d trials: %d done, %d failed, %d gave up, %d pending, %d running elsewhere "
            "(this run: %d ok, %d failed, %.1f s%s)\n",
            res.dir.c_str(), static_cast<int>(st.trials.size()), st.done, st.failed, st.gave_up,
            st.pending, st.running, res.succeeded, res.failed, res.seconds,
            res.stopped ? ", stopped by SIGUSR1" : "");
        if (r_aggregate) {
          mpq::report::AggregateOptions ao;
          std::printf("\n%s", mpq::report::aggregate_sweep(res.dir, ao).markdown.c_str());
        }
        if (res.stopped) return mpq::sweep::kExitStopped;
      }
    } else if (*prepare) {
      mpq::apply_threads(0);
      auto spec = mpq::sweep::load_sweep(pp_file, pp_over);
      mpq::store::SweepDir dir(spec.run.results_dir + "/" + spec.name);
      mpq::sweep::TrialContext ctx;
      mpq::sweep::SweepOptions o;
      o.force = pp_force;
      auto plan = mpq::sweep::prepare_sweep(spec, o, dir, ctx);
      std::printf("prepared %s: %zu trials\n", dir.dir().c_str(), plan.size());
    } else if (*work) {
      auto spec = mpq::sweep::load_sweep(w_file, w_over);
      mpq::sweep::WorkerOptions o;
      o.sweep.force = w_force;
      o.stop_grace = w_grace;
      o.max_trials = w_max;
      o.sweep.simulate_seconds = w_simulate;
      auto r = mpq::sweep::run_worker(spec, o);
      std::printf(
          "worker %s: ran %d (%d ok, %d failed), %d already done, %d left to other workers, "
          "%.1f s (store %.3f s)%s\n",
          r.worker.c_str(), r.ran, r.succeeded, r.failed, r.already_done, r.left_to_others,
          r.seconds, r.store_seconds, r.stopped ? ", stopped by SIGUSR1" : "");
      if (r.stopped) return mpq::sweep::kExitStopped;
    } else if (*submit) {
      auto r = mpq::launch::submit(sl_file, so_slurm);
      if (so_slurm.dry_run) {
        std::fputs(r.dry_run_text.c_str(), stdout);
      } else {
        for (const auto& s : r.scripts) std::printf("wrote %s\n", s.c_str());
        for (const auto& [kind, id] : r.jobs)
          std::printf("submitted %s job %s\n", kind.c_str(), id.c_str());
      }
    } else if (*scancel) {
      auto ids = mpq::launch::cancel(sc_dir);
      std::printf("cancelled %zu job(s)%s\n", ids.size(), ids.empty() ? " (none recorded)" : "");
    } else if (*status) {
      mpq::store::SweepDir dir(s_dir);
      const int max_attempts = dir.max_attempts();
      auto st = dir.status(max_attempts);
      std::printf("%s: %zu trials: %d done, %d failed, %d gave up, %d pending, %d running\n",
                  s_dir.c_str(), st.trials.size(), st.done, st.failed, st.gave_up, st.pending,
                  st.running);
      if (st.invalid_files)
        std::printf("%d trial file(s) present but invalid (will be redone)\n", st.invalid_files);
      // Who holds which trial (claims), with the Slurm job and array task of the holder.
      std::map<std::string, std::string> holder;
      for (const auto& c : st.claims) {
        const auto& h = c.holder;
        std::string who =
            h.value("slurm_array_job_id", "").empty()
                ? (h.value("slurm_job_id", "").empty() ? h.value("worker", "?")
                                                       : "job " + h.value("slurm_job_id", ""))
                : "job " + h.value("slurm_array_job_id", "") + "_" +
                      h.value("slurm_array_task_id", "");
        char age[64];
        std::snprintf(age, sizeof age, " (%s, heartbeat %.0f s ago)", c.live ? "live" : "stale",
                      c.age_seconds);
        holder[c.trial] = who + age;
      }
      mpq::report::Table t(
          {"trial id", "state", "attempts", "claimed by", "settings", "last message"});
      for (const auto& [p, state] : st.trials) {
        if (!s_list &&
            (state == mpq::store::TrialState::kDone || state == mpq::store::TrialState::kPending))
          continue;
        const auto& h = st.history[p.id];
        t.add_row({p.id.substr(0, 12), mpq::store::trial_state_name(state),
                   std::to_string(h.failed), holder.count(p.id) ? holder[p.id] : "",
                   p.settings.dump(), h.last_message});
      }
      if (t.rows()) std::printf("\n%s", t.markdown().c_str());
      const std::string jobs = mpq::launch::jobs_table(s_dir);
      if (!jobs.empty()) std::printf("\nSlurm jobs (slurm/jobs.jsonl):\n\n%s", jobs.c_str());
    } else if (*aggregate) {
      mpq::report::AggregateOptions ao;
      if (!a_metrics.empty()) ao.metrics = a_metrics;
      for (const auto& p : a_pivots) ao.pivots.push_back(mpq::report::parse_pivot(p));
      ao.pool_model_seeds = a_pool;
      ao.latex = a_format == "latex";
      ao.bold_best = a_bold;
      auto r = mpq::report::aggregate_sweep(a_dir, ao);
      std::fputs((ao.latex ? r.latex : r.markdown).c_str(), stdout);
    } else if (*report) {
      mpq::report::ReportOptions ro;
      ro.overhead = rp_overhead;
      ro.metric = rp_metric;
      ro.pool_model_seeds = rp_pool;
      ro.detail_bits = rp_bits;
      auto r = mpq::report::write_report(rp_dir, ro);
      std::printf("report: %s (%zu figures; %s)\n", r.markdown.c_str(), r.figures.size(),
                  r.html.c_str());
    }
  } catch (...) {
    return report_error(std::current_exception());
  }
  return mpq::kExitOk;
}
