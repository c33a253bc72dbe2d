#include "mpq/data/file_datasets.h"

#include <matio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "mpq/util/error.h"
#include "mpq/util/sha256.h"

namespace mpq::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// torchvision.datasets.folder.IMG_EXTENSIONS, matched on the lower-cased name.
const char* const kImageExtensions[] = {".jpg", ".jpeg", ".png",  ".ppm", ".bmp",
                                        ".pgm", ".tif",  ".tiff", ".webp"};

bool has_image_extension(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* e : kImageExtensions) {
    const size_t n = std::strlen(e);
    if (name.size() >= n && name.compare(name.size() - n, n, e) == 0) return true;
  }
  return false;
}

std::string extensions_text() {
  std::string s;
  for (const char* e : kImageExtensions) s += (s.empty() ? "" : " ") + std::string(e);
  return s;
}

void require_directory(const fs::path& dir, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw InputError(dir.string() + ": does not exist (" + what + ")");
  if (!fs::is_directory(dir, ec))
    throw InputError(dir.string() + ": not a directory (" + what + ")");
}

// Sorted names of the entries of `dir` that are directories (symlinks followed) or files.
void list_dir(const fs::path& dir, std::vector<std::string>* dirs,
              std::vector<std::string>* files) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw InputError(dir.string() + ": cannot list directory (" + ec.message() + ")");
  for (; it != end; it.increment(ec)) {
    if (ec) throw InputError(dir.string() + ": cannot list directory (" + ec.message() + ")");
    std::error_code e2;
    bool is_dir = fs::is_directory(it->path(), e2);  // follows symlinks, like os.walk(followlinks)
    auto* into = is_dir ? dirs : files;
    if (into) into->push_back(it->path().filename().string());
  }
  if (dirs) std::sort(dirs->begin(), dirs->end());
  if (files) std::sort(files->begin(), files->end());
}

int64_t file_size_of(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? -1 : static_cast<int64_t>(n);
}

using Item = FileItem;

// torchvision's make_dataset for one class: sorted(os.walk(class_dir, followlinks=True)), files
// sorted, filtered by extension. `prefix` is class_dir relative to the dataset directory.
void walk_class(const fs::path& base, const std::string& prefix, int64_t label,
                std::vector<Item>& out) {
  std::vector<std::pair<std::string, std::vector<std::string>>> dirs;  // (rel dir, files)
  std::vector<std::string> stack = {prefix};
  while (!stack.empty()) {
    std::string rel = stack.back();
    stack.pop_back();
    std::vector<std::string> sub, files;
    list_dir(base / rel, &sub, &files);
    dirs.push_back({rel, files});
    for (const auto& s : sub) stack.push_back(rel + "/" + s);
  }
  std::sort(dirs.begin(), dirs.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [rel, files] : dirs)
    for (const auto& f : files)
      if (has_image_extension(f)) {
        std::string r = rel + "/" + f;
        out.push_back({r, file_size_of(base / r), label});
      }
}

// Items of an ImageFolder directory; classes = sorted sub-directory names, or, when
// `class_index` is given, the label of each folder comes from it (folders not in it: error).
std::vector<Item> folder_items(const fs::path& dir, std::vector<std::string>* classes,
                               const std::map<std::string, int64_t>* class_index,
                               const std::string& index_source) {
  std::vector<std::string> sub;
  list_dir(dir, &sub, nullptr);
  if (sub.empty())
    throw InputError(dir.string() + ": no class folders (expected <class>/<image files> below it)");
  std::vector<Item> items;
  for (size_t c = 0; c < sub.size(); ++c) {
    int64_t label = static_cast<int64_t>(c);
    if (class_index) {
      auto it = class_index->find(sub[c]);
      if (it == class_index->end())
        throw InputError((dir / sub[c]).string() + ": folder '" + sub[c] + "' is not a class of " +
                         index_source);
      label = it->second;
    }
    size_t before = items.size();
    walk_class(dir, sub[c], label, items);
    if (items.size() == before)
      throw InputError((dir / sub[c]).string() + ": empty class folder (no file ending in " +
                       extensions_text() + ")");
  }
  if (classes && !class_index) *classes = sub;
  return items;
}

std::string describe_files(const std::string& what, const fs::path& dir, size_t n,
                           const std::string& layout) {
  return what + " (" + std::to_string(n) + " images" + (layout.empty() ? "" : ", " + layout) +
         ") at " + dir.string();
}

// --- ImageNet devkit files ----------------------------------------------------------------------

struct Synsets {
  std::map<int64_t, std::string> id_to_wnid;  // the classes (leaf synsets) by ILSVRC2012_ID
  std::string source;
};

double mat_number(const matvar_t* v, const std::string& where) {
  if (v == nullptr || v->data == nullptr || v->isComplex)
    throw InputError(where + ": missing or not a real number");
  switch (v->class_type) {
    case MAT_C_DOUBLE:
      return *static_cast<const double*>(v->data);
    case MAT_C_SINGLE:
      return *static_cast<const float*>(v->data);
    case MAT_C_INT8:
      return *static_cast<const int8_t*>(v->data);
    case MAT_C_UINT8:
      return *static_cast<const uint8_t*>(v->data);
    case MAT_C_INT16:
      return *static_cast<const int16_t*>(v->data);
    case MAT_C_UINT16:
      return *static_cast<const uint16_t*>(v->data);
    case MAT_C_INT32:
      return *static_cast<const int32_t*>(v->data);
    case MAT_C_UINT32:
      return *static_cast<const uint32_t*>(v->data);
    case MAT_C_INT64:
      return static_cast<double>(*static_cast<const int64_t*>(v->data));
    case MAT_C_UINT64:
      return static_cast<double>(*static_cast<const uint64_t*>(v->data));
    default:
      throw InputError(where + ": not a number");
  }
}

std::string mat_string(const matvar_t* v, const std::string& where) {
  if (v == nullptr || v->class_type != MAT_C_CHAR || v->data == nullptr)
    throw InputError(where + ": missing or not a character array");
  size_t n = 1;
  for (int r = 0; r < v->rank; ++r) n *= v->dims[r];
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    unsigned code = v->data_size == 2   ? static_cast<const uint16_t*>(v->data)[i]
                    : v->data_size == 4 ? static_cast<const uint32_t*>(v->data)[i]
                                        : static_cast<const uint8_t*>(v->data)[i];
    if (code > 127) throw InputError(where + ": non-ASCII character in a wnid");
    s += static_cast<char>(code);
  }
  return s;
}

std::mutex g_matio_mutex;  // libmatio's logger is process-global
std::string g_matio_message;

// matio's log callback takes `char*` (1.5.23, Debian 12) or `const char*` (1.5.28, Debian 13):
// a template, whose parameter is deduced from Mat_LogInitFunc's pointer type, fits both.
template <typename Text>
void matio_log(int level, Text message) {
  if (level & (MATIO_LOG_LEVEL_ERROR | MATIO_LOG_LEVEL_CRITICAL))
    g_matio_message = message ? message : "";
}

Synsets read_meta_mat(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_matio_mutex);
  Mat_LogInitFunc("mpq", matio_log);
  g_matio_message.clear();
  mat_t* mat = Mat_Open(path.c_str(), MAT_ACC_RDONLY);
  if (mat == nullptr)
    throw InputError(path + ": not a readable MAT-file" +
                     (g_matio_message.empty() ? "" : " (" + g_matio_message + ")"));
  matvar_t* syn = Mat_VarRead(mat, "synsets");
  struct Closer {
    mat_t* m;
    matvar_t* v;
    ~Closer() {
      if (v) Mat_VarFree(v);
      Mat_Close(m);
    }
  } closer{mat, syn};
  if (syn == nullptr || syn->class_type != MAT_C_STRUCT)
    throw InputError(path +
                     ": has no struct array 'synsets' (expected the ILSVRC2012 devkit's "
                     "meta.mat)");
  size_t n = 1;
  for (int r = 0; r < syn->rank; ++r) n *= syn->dims[r];
  Synsets s;
  s.source = path;
  for (size_t i = 0; i < n; ++i) {
    const std::string at = path + ": synsets(" + std::to_string(i + 1) + ")";
    auto* id = Mat_VarGetStructFieldByName(syn, "ILSVRC2012_ID", i);
    auto* wnid = Mat_VarGetStructFieldByName(syn, "WNID", i);
    auto* kids = Mat_VarGetStructFieldByName(syn, "num_children", i);
    double children = mat_number(kids, at + ".num_children");
    if (children != 0) continue;
    s.id_to_wnid[static_cast<int64_t>(mat_number(id, at + ".ILSVRC2012_ID"))] =
        mat_string(wnid, at + ".WNID");
  }
  if (s.id_to_wnid.empty()) throw InputError(path + ": no leaf synsets (num_children == 0)");
  return s;
}

Synsets read_synset_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot read synset list (" + std::strerror(errno) + ")");
  Synsets s;
  s.source = path;
  std::string line;
  int64_t id = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string wnid;
    ls >> wnid;
    if (wnid.empty()) continue;
    s.id_to_wnid[++id] = wnid;
  }
  if (s.id_to_wnid.empty()) throw InputError(path + ": empty synset list");
  return s;
}

std::string find_first(const std::vector<fs::path>& dirs, const std::vector<std::string>& names) {
  for (const auto& n : names)
    for (const auto& d : dirs) {
      std::error_code ec;
      if (fs::is_regular_file(d / n, ec)) return (d / n).string();
    }
  return "";
}

// Image files of a flat directory, sorted.
std::vector<std::string> flat_files(const fs::path& dir) {
  std::vector<std::string> files, names;
  list_dir(dir, nullptr, &files);
  for (const auto& f : files)
    if (has_image_extension(f)) names.push_back(f);
  return names;
}

std::map<std::string, int64_t> sorted_index(std::vector<std::string>& wnids) {
  std::sort(wnids.begin(), wnids.end());
  std::map<std::string, int64_t> idx;
  for (size_t i = 0; i < wnids.size(); ++i) idx[wnids[i]] = static_cast<int64_t>(i);
  return idx;
}

std::unique_ptr<Dataset> open_flat(const fs::path& root, const std::string& split,
                                   const ImagenetOptions& in, const FileDatasetOptions& opt) {
  const fs::path dir = root / split;
  const std::vector<fs::path> places = {root, root / "ILSVRC2012_devkit_t12" / "data",
                                        root / "ILSVRC2012_devkit_t12", root / "devkit" / "data",
                                        root / "data"};
  std::string gt = in.ground_truth.empty()
                       ? find_first(places, {"ILSVRC2012_validation_ground_truth.txt"})
                       : in.ground_truth;
  if (gt.empty())
    throw InputError(dir.string() +
                     ": flat ImageNet images but no ILSVRC2012_validation_ground_truth.txt in " +
                     root.string() + " or its devkit (set data.imagenet.ground_truth)");
  std::string meta = in.meta.empty() ? find_first(places, {"meta.mat", "synsets.txt"}) : in.meta;
  if (meta.empty())
    throw InputError(dir.string() + ": flat ImageNet images but no meta.mat or synsets.txt in " +
                     root.string() + " or its devkit (set data.imagenet.meta)");
  Synsets syn = meta.size() >= 4 && meta.compare(meta.size() - 4, 4, ".mat") == 0
                    ? read_meta_mat(meta)
                    : read_synset_list(meta);
  std::vector<std::string> wnids;
  for (const auto& [id, w] : syn.id_to_wnid) wnids.push_back(w);
  auto index = sorted_index(wnids);
  if (index.size() != syn.id_to_wnid.size())
    throw InputError(meta + ": the same wnid appears for two ILSVRC2012_IDs");

  std::vector<int64_t> truth;
  {
    std::ifstream g(gt);
    if (!g) throw InputError(gt + ": cannot read (" + std::strerror(errno) + ")");
    std::string line;
    int64_t n = 0;
    while (std::getline(g, line)) {
      ++n;
      char* end = nullptr;
      long long v = std::strtoll(line.c_str(), &end, 10);
      while (end && (*end == ' ' || *end == '\r' || *end == '\t')) ++end;
      if (line.empty() || end == line.c_str() || (end && *end != '\0'))
        throw InputError(gt + ": line " + std::to_string(n) + ": expected an ILSVRC2012_ID, got '" +
                         line.substr(0, 40) + "'");
      if (!syn.id_to_wnid.count(v))
        throw InputError(gt + ": line " + std::to_string(n) + ": ILSVRC2012_ID " +
                         std::to_string(v) + " is not one of the " +
                         std::to_string(syn.id_to_wnid.size()) + " classes of " + meta);
      truth.push_back(v);
    }
  }
  auto files = flat_files(dir);
  if (files.size() != truth.size())
    throw InputError(gt + ": holds " + std::to_string(truth.size()) + " labels but " +
                     dir.string() + " holds " + std::to_string(files.size()) + " images");
  std::vector<Item> items;
  for (const auto& f : files) {
    // ILSVRC2012_val_00000001.JPEG -> image number 1 -> ground-truth line 1.
    unsigned long long k = 0;
    if (std::sscanf(f.c_str(), "ILSVRC2012_val_%8llu", &k) != 1 || k < 1 || k > truth.size())
      throw InputError((dir / f).string() +
                       ": not named ILSVRC2012_val_<n>.JPEG with n in the ground truth's 1.." +
                       std::to_string(truth.size()));
    const std::string& w = syn.id_to_wnid.at(truth[k - 1]);
    items.push_back({f, file_size_of(dir / f), index.at(w)});
  }
  json m = {{"dataset", "imagenet"},
            {"split", split},
            {"layout", "flat"},
            {"label_mapping", "ILSVRC2012_IDs of " + gt + " mapped to wnids by " + meta +
                                  ", class index = sorted wnid order"}};
  auto desc = describe_files("imagenet " + split, dir, items.size(), "flat layout");
  return make_file_dataset("imagenet", dir, std::move(items), wnids, opt, m, desc);
}

std::unique_ptr<Dataset> open_kaggle(const fs::path& root, const std::string& split,
                                     const FileDatasetOptions& opt) {
  const std::string mapping = (root / "LOC_synset_mapping.txt").string();
  std::vector<std::string> wnids;
  {
    std::ifstream in(mapping);
    if (!in) throw InputError(mapping + ": cannot read (" + std::strerror(errno) + ")");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string w;
      ls >> w;
      if (!w.empty()) wnids.push_back(w);
    }
  }
  if (wnids.empty()) throw InputError(mapping + ": no wnids");
  auto index = sorted_index(wnids);
  const fs::path dir = root / "ILSVRC" / "Data" / "CLS-LOC" / split;
  require_directory(dir, "Kaggle ImageNet split");
  std::vector<std::string> sub;
  list_dir(dir, &sub, nullptr);
  std::vector<Item> items;
  std::string how;
  if (!sub.empty()) {  // train: wnid folders
    items = folder_items(dir, nullptr, &index, mapping);
    how = "folder names looked up in " + mapping;
  } else {
    const std::string csv = (root / ("LOC_" + split + "_solution.csv")).string();
    std::ifstream in(csv);
    if (!in) throw InputError(csv + ": cannot read (" + std::strerror(errno) + ")");
    std::map<std::string, std::string> label_of;
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (n == 1 && line.rfind("ImageId", 0) == 0) continue;
      auto comma = line.find(',');
      if (comma == std::string::npos)
        throw InputError(csv + ": line " + std::to_string(n) +
                         ": expected ImageId,PredictionString");
      std::istringstream ps(line.substr(comma + 1));
      std::string w;
      ps >> w;
      if (!index.count(w))
        throw InputError(csv + ": line " + std::to_string(n) + ": '" + w + "' is not a wnid of " +
                         mapping);
      label_of[line.substr(0, comma)] = w;
    }
    for (const auto& f : flat_files(dir)) {
      auto it = label_of.find(fs::path(f).stem().string());
      if (it == label_of.end())
        throw InputError((dir / f).string() + ": image has no row in " + csv);
      items.push_back({f, file_size_of(dir / f), index.at(it->second)});
    }
    how = "first wnid of PredictionString in " + csv;
  }
  json m = {{"dataset", "imagenet"},
            {"split", split},
            {"layout", "kaggle"},
            {"label_mapping", how + ", class index = sorted wnids of " + mapping}};
  auto desc = describe_files("imagenet " + split, dir, items.size(), "kaggle layout");
  return make_file_dataset("imagenet", dir, std::move(items), wnids, opt, m, desc);
}

}  // namespace

std::unique_ptr<Dataset> open_image_folder(const std::string& root, const std::string& split,
                                           const FileDatasetOptions& options) {
  fs::path dir = split.empty() ? fs::path(root) : fs::path(root) / split;
  require_directory(dir, "data.root of an image_folder dataset");
  std::vector<std::string> classes;
  auto items = folder_items(dir, &classes, nullptr, "");
  json m = {{"dataset", "image_folder"},
            {"split", split},
            {"layout", "folder"},
            {"label_mapping", "class index = sorted folder names (torchvision ImageFolder)"}};
  auto desc =
      describe_files("image_folder" + (split.empty() ? "" : " " + split), dir, items.size(), "");
  return make_file_dataset("image_folder", dir, std::move(items), classes, options, m, desc);
}

const char* imagenet_layout_name(ImagenetLayout layout) {
  switch (layout) {
    case ImagenetLayout::kFolder:
      return "folder";
    case ImagenetLayout::kFlat:
      return "flat";
    case ImagenetLayout::kKaggle:
      return "kaggle";
    case ImagenetLayout::kAuto:
      break;
  }
  return "auto";
}

ImagenetLayout parse_imagenet_layout(const std::string& name) {
  for (auto l : {ImagenetLayout::kAuto, ImagenetLayout::kFolder, ImagenetLayout::kFlat,
                 ImagenetLayout::kKaggle})
    if (name == imagenet_layout_name(l)) return l;
  throw ConfigError("/data/layout: unknown layout '" + name + "'");
}

ImagenetLayout detect_imagenet_layout(const std::string& root, const std::string& split) {
  const fs::path r(root);
  require_directory(r, "data.root of the imagenet dataset");
  std::error_code ec;
  if (fs::exists(r / "LOC_synset_mapping.txt", ec)) return ImagenetLayout::kKaggle;
  const fs::path dir = r / split;
  require_directory(dir, "imagenet split '" + split + "'");
  std::vector<std::string> sub, files;
  list_dir(dir, &sub, &files);
  if (!sub.empty()) return ImagenetLayout::kFolder;
  for (const auto& f : files)
    if (has_image_extension(f)) return ImagenetLayout::kFlat;
  throw InputError(dir.string() +
                   ": not an ImageNet split (expected <wnid>/ folders or ILSVRC2012_val_*.JPEG "
                   "files)");
}

std::unique_ptr<Dataset> open_imagenet(const std::string& root, const std::string& split,
                                       const ImagenetOptions& imagenet,
                                       const FileDatasetOptions& options) {
  const ImagenetLayout layout = imagenet.layout == ImagenetLayout::kAuto
                                    ? detect_imagenet_layout(root, split)
                                    : imagenet.layout;
  const fs::path r(root);
  if (layout == ImagenetLayout::kKaggle) return open_kaggle(r, split, options);
  if (layout == ImagenetLayout::kFlat) {
    require_directory(r / split, "imagenet split '" + split + "'");
    return open_flat(r, split, imagenet, options);
  }
  const fs::path dir = r / split;
  require_directory(dir, "imagenet split '" + split + "'");
  std::vector<std::string> classes;
  auto items = folder_items(dir, &classes, nullptr, "");
  json m = {{"dataset", "imagenet"},
            {"split", split},
            {"layout", "folder"},
            {"label_mapping", "class index = sorted wnid folder names (torchvision ImageFolder)"}};
  auto desc = describe_files("imagenet " + split, dir, items.size(), "folder layout");
  return make_file_dataset("imagenet", dir, std::move(items), classes, options, m, desc);
}

}  // namespace mpq::data
