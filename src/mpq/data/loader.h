// Turning dataset examples into normalized float32 batches, decoding on a thread pool ahead of
// the consumer (docs/datasets.md, "Data pipeline").
//
// A BatchStream walks a list of example indices in order, in batches of `batch_size`. `workers`
// threads decode and preprocess images (Dataset::read_image, then normalize_image) up to
// `prefetch` batches ahead of the batch the consumer is working on, so decoding overlaps the
// forward pass. Fixed-size images form one [n, C, H, W] tensor per batch (recycled once the
// consumer drops it); variable-size images a list of [C, H_i, W_i] tensors. Memory bound: at most
// (prefetch + 1) batches of float32 images exist at once, (prefetch + 1) * batch_size * C * H * W
// * 4 bytes (e.g. 3 * 64 * 3 * 224 * 224 * 4 = 116 MB), plus one decoded image per worker.
//
// A bad image (unreadable, truncated, not an image) fails the stream with the dataset's message
// naming the file, unless `skip_bad` is set: then the example is dropped from its batch and
// counted in Batch::skipped. Batches come out in order and are identical for any worker count.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mpq/data/dataset.h"

namespace mpq::data {

struct Batch {
  torch::Tensor images;                   ///< [n, C, H, W] float32, normalized (fixed-size data)
  std::vector<torch::Tensor> image_list;  ///< n tensors [C, H_i, W_i] (variable-size data)
  torch::Tensor labels;                   ///< [n] int64 (-1 for detection examples)
  std::vector<int64_t> positions;  ///< position of each row in the stream's index list
  int64_t skipped = 0;             ///< examples of this batch dropped as bad images
  std::vector<std::string> skipped_names;
  /// Number of examples in the batch.
  int64_t size() const {
    return images.defined() ? images.size(0) : static_cast<int64_t>(image_list.size());
  }
};

struct LoaderOptions {
  int workers = 1;   ///< decoding threads (>= 1)
  int prefetch = 2;  ///< batches decoded ahead of the consumer
  bool skip_bad = false;
};

class BatchStream {
 public:
  /// Streams `indices` (example indices of `data`, which must outlive the stream).
  BatchStream(const Dataset& data, std::vector<int64_t> indices, int64_t batch_size,
              const LoaderOptions& options);
  ~BatchStream();
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;

  /// The next batch; false after the last one. Throws InputError for a bad image (see header).
  bool next(Batch* out);
  int64_t batches() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

/// The examples `indices` of `data` as one batch.
Batch load_batch(const Dataset& data, const std::vector<int64_t>& indices,
                 const LoaderOptions& options = {});

/// Indices begin, begin + 1, ..., end - 1.
std::vector<int64_t> index_range(int64_t begin, int64_t end);

}  // namespace mpq::data
