// Reading TorchScript archives (network.h: archive_extra_meta, archive_has_record, load_archive):
// the zip's records without loading the model, and loading with one-line errors that name the
// file and, for archives this LibTorch cannot read, the producer and the fix.
#include <caffe2/serialize/inline_container.h>
#include <sys/stat.h>
#include <torch/script.h>
#include <torch/version.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "mpq/model/network.h"
#include "mpq/model/nms.h"
#include "mpq/model/torch_text.h"
#include "mpq/util/error.h"

namespace mpq::model {
using torch::jit::Module;

bool archive_has_record(const std::string& path, const std::string& record) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    for (const auto& name : reader.getAllRecords())
      if (name == record ||
          (name.size() > record.size() &&
           name.compare(name.size() - record.size() - 1, std::string::npos, "/" + record) == 0))
        return true;
  } catch (const std::exception&) {
  }
  return false;
}

std::string archive_extra_meta(const std::string& path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord("extra/mpq_meta.json")) return "";
    auto [data, size] = reader.getRecord("extra/mpq_meta.json");
    return std::string(static_cast<const char*>(data.get()), size);
  } catch (const std::exception&) {
    return "";
  }
}

namespace {

// The InputError for an archive LibTorch could not load, with the message `m` it gave.
[[noreturn]] void refuse(const std::string& path, const std::string& m) {
  if (m.find("zip archive") != std::string::npos ||
      m.find("PytorchStreamReader") != std::string::npos)
    throw InputError(path + ": not a TorchScript archive (" + m + ")");
  // PyTorch 2.x writes a `byteorder` record that 1.13 never wrote: name the producer and the fix.
  if (TORCH_VERSION_MAJOR < 2 && archive_has_record(path, "byteorder"))
    throw InputError(path + ": written by PyTorch 2.x, which this LibTorch " + TORCH_VERSION +
                     " cannot load (" + m +
                     "): rebuild mpq against PyTorch 2.x (scripts/build.sh --torch pip) or "
                     "export the model with torch 1.13");
  throw InputError(path + ": cannot load TorchScript archive: " + m +
                   " (archives from a much newer PyTorch may use operators LibTorch " +
                   TORCH_VERSION + " does not know)");
}

}  // namespace

Module load_archive(const std::string& path, std::string* meta_json,
                    const std::string& detection_ops) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    throw InputError(path + ": cannot open model (" + std::strerror(errno) + ")");
  if (S_ISDIR(st.st_mode))
    throw InputError(path + ": is a directory, expected a TorchScript archive (.pt)");
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw InputError(path + ": cannot read model (" + std::strerror(errno) + ")");
  }
  auto load = [&] {
    torch::jit::ExtraFilesMap extra{{"mpq_meta.json", ""}};
    Module m = torch::jit::load(path, c10::nullopt, extra);
    if (meta_json) *meta_json = extra["mpq_meta.json"];
    return m;
  };
  try {
    try {
      return load();
    } catch (const std::exception& e) {
      // torchvision detectors call torchvision::nms: provide it, then read the archive again.
      if (std::string(e.what()).find("torchvision::") == std::string::npos ||
          !detection_ops_in_use().empty())
        throw;
      provide_detection_ops(detection_ops);
      return load();
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const InputError&) {
    throw;
  } catch (const c10::Error& e) {
    refuse(path, short_message(e));
  } catch (const std::exception& e) {  // e.g. "Unknown builtin op" from the script compiler
    refuse(path, one_line(e.what()));
  }
}

}  // namespace mpq::model
