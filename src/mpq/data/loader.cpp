#include "mpq/data/loader.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "mpq/util/error.h"

namespace mpq::data {

std::vector<int64_t> index_range(int64_t begin, int64_t end) {
  std::vector<int64_t> v(static_cast<size_t>(std::max<int64_t>(0, end - begin)));
  std::iota(v.begin(), v.end(), begin);
  return v;
}

// Work is handed out image by image in stream order; a batch's slot is allocated when its first
// image is taken and handed to the consumer when its last image is done. Workers never take an
// image of a batch more than `prefetch` batches ahead of the one the consumer waits for.
struct BatchStream::State {
  struct Slot {
    Batch batch;
    std::vector<char> ok;
    int64_t remaining = 0;
    std::string error;
  };

  const Dataset& data;
  std::vector<int64_t> indices;
  int64_t batch_size;
  LoaderOptions opt;
  int64_t nbatches = 0;
  std::vector<int64_t> shape;  // C, H, W (H = W = 0: sizes vary)
  int64_t image_bytes = 0;
  bool fixed = true;

  std::mutex mu;
  std::condition_variable work_cv, done_cv;
  std::map<int64_t, Slot> slots;
  // Image tensors of earlier batches, reused once the consumer dropped them: fresh tensors of
  // tens of MB are fresh mmaps whose page faults cost as much as reading cached images.
  std::vector<torch::Tensor> pool;
  int64_t job_batch = 0, job_item = 0;  // next image to hand out
  int64_t consumed = 0;                 // next batch the consumer takes
  bool stop = false;
  std::vector<std::thread> threads;

  State(const Dataset& d, std::vector<int64_t> idx, int64_t bs, const LoaderOptions& o)
      : data(d), indices(std::move(idx)), batch_size(bs), opt(o) {
    MPQ_ASSERT(batch_size > 0, "batch size must be positive");
    nbatches = (static_cast<int64_t>(indices.size()) + batch_size - 1) / batch_size;
    shape = data.image_shape();
    image_bytes = data.image_bytes();
    fixed = data.fixed_size();
  }

  // A [n, C, H, W] float tensor: a pooled one nobody else holds, else a new one (kept in the
  // pool). Called with `mu` held.
  torch::Tensor take_buffer(int64_t n) {
    for (auto& t : pool)
      if (t.use_count() == 1 && t.storage().use_count() == 1 && t.size(0) == n) return t;
    auto t = torch::empty({n, shape[0], shape[1], shape[2]}, torch::kFloat32);
    if (pool.size() < static_cast<size_t>(opt.prefetch) + 3) pool.push_back(t);
    return t;
  }

  int64_t batch_len(int64_t b) const {
    return std::min<int64_t>(batch_size, static_cast<int64_t>(indices.size()) - b * batch_size);
  }

  void work() {
    ImageData img;
    const Preprocess& pre = data.preprocess();
    for (;;) {
      std::unique_lock<std::mutex> lk(mu);
      work_cv.wait(lk, [&] {
        return stop || job_batch >= nbatches || job_batch <= consumed + opt.prefetch;
      });
      if (stop || job_batch >= nbatches) return;
      const int64_t b = job_batch, j = job_item;
      Slot& slot = slots[b];
      if (j == 0) {
        const int64_t n = batch_len(b);
        if (fixed)
          slot.batch.images = take_buffer(n);
        else
          slot.batch.image_list.assign(static_cast<size_t>(n), torch::Tensor());
        slot.batch.labels = torch::empty({n}, torch::kInt64);
        slot.ok.assign(static_cast<size_t>(n), 0);
        slot.remaining = n;
      }
      if (++job_item == batch_len(b)) {
        ++job_batch;
        job_item = 0;
      }
      float* dst = fixed ? slot.batch.images.data_ptr<float>() + j * image_bytes : nullptr;
      int64_t* lab = slot.batch.labels.data_ptr<int64_t>() + j;
      lk.unlock();

      const int64_t index = indices[static_cast<size_t>(b * batch_size + j)];
      std::string error;
      torch::Tensor own;
      try {
        data.read_image(index, &img);
        if (fixed) {
          MPQ_ASSERT(img.channels == shape[0] && img.height == shape[1] && img.width == shape[2],
                     "a fixed-size dataset returned an image of another size");
        } else {
          own = torch::empty({img.channels, img.height, img.width}, torch::kFloat32);
          dst = own.data_ptr<float>();
        }
        normalize_image(img.pixels.data(), static_cast<int>(img.channels),
                        img.height * img.width, pre, dst);
        *lab = data.label(index);
      } catch (const std::exception& e) {
        error = e.what();
      }

      lk.lock();
      if (error.empty()) {
        slot.ok[static_cast<size_t>(j)] = 1;
        if (!fixed) slot.batch.image_list[static_cast<size_t>(j)] = own;
      } else if (opt.skip_bad) {
        slot.batch.skipped_names.push_back(data.item_name(index));
      } else if (slot.error.empty()) {
        slot.error = error;
      }
      if (--slot.remaining == 0) done_cv.notify_all();
    }
  }
};

BatchStream::BatchStream(const Dataset& data, std::vector<int64_t> indices, int64_t batch_size,
                         const LoaderOptions& options)
    : s_(std::make_unique<State>(data, std::move(indices), batch_size, options)) {
  const int n = std::max(1, options.workers);
  for (int i = 0; i < n; ++i) s_->threads.emplace_back([this] { s_->work(); });
}

BatchStream::~BatchStream() {
  {
    std::lock_guard<std::mutex> lk(s_->mu);
    s_->stop = true;
  }
  s_->work_cv.notify_all();
  for (auto& t : s_->threads) t.join();
}

int64_t BatchStream::batches() const {
  return s_->nbatches;
}

bool BatchStream::next(Batch* out) {
  State& s = *s_;
  State::Slot slot;
  int64_t b = 0;
  {
    std::unique_lock<std::mutex> lk(s.mu);
    if (s.consumed >= s.nbatches) return false;
    b = s.consumed;
    s.done_cv.wait(lk, [&] {
      auto it = s.slots.find(b);
      return it != s.slots.end() && it->second.remaining == 0 && !it->second.ok.empty();
    });
    slot = std::move(s.slots[b]);
    s.slots.erase(b);
    ++s.consumed;
  }
  s.work_cv.notify_all();
  if (!slot.error.empty()) throw InputError(slot.error);
  Batch& batch = slot.batch;
  const int64_t n = static_cast<int64_t>(slot.ok.size());
  for (int64_t j = 0; j < n; ++j)
    if (slot.ok[static_cast<size_t>(j)]) batch.positions.push_back(b * s.batch_size + j);
  batch.skipped = n - static_cast<int64_t>(batch.positions.size());
  if (batch.skipped > 0) {
    std::vector<int64_t> keep;
    for (int64_t j = 0; j < n; ++j)
      if (slot.ok[static_cast<size_t>(j)]) keep.push_back(j);
    auto k = torch::tensor(keep, torch::kInt64);
    if (batch.images.defined()) batch.images = batch.images.index_select(0, k);
    std::vector<torch::Tensor> list;
    for (int64_t j : keep) {
      if (!batch.image_list.empty()) list.push_back(batch.image_list[static_cast<size_t>(j)]);
    }
    batch.image_list = list;
    batch.labels = batch.labels.index_select(0, k);
  }
  *out = std::move(batch);
  return true;
}

Batch load_batch(const Dataset& data, const std::vector<int64_t>& indices,
                 const LoaderOptions& options) {
  Batch b;
  if (indices.empty()) {
    auto s = data.image_shape();
    if (data.fixed_size()) b.images = torch::empty({0, s[0], s[1], s[2]});
    b.labels = torch::empty({0}, torch::kInt64);
    return b;
  }
  LoaderOptions o = options;
  o.prefetch = 0;
  BatchStream stream(data, indices, static_cast<int64_t>(indices.size()), o);
  stream.next(&b);
  return b;
}

}  // namespace mpq::data
