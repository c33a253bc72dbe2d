// The preprocessed-image cache (docs/datasets.md, "Preprocessed-image cache").
//
// A sweep evaluates the same images hundreds of times; decoding and resizing a 500x375 JPEG
// costs milliseconds, copying its 224x224x3 bytes microseconds. So the 8-bit images after the
// geometric preprocessing (exactly what Dataset::read_image returns) are written once per
// (dataset fingerprint, preprocessing, example list) to
//
//   <cache_dir>/images-<key>.h5        key = first 32 hex digits of
//                                       SHA-256("mpq-image-cache-v2\n" + view fingerprint)
//     /              attrs format="mpq-image-cache", format_version=2, key, fingerprint,
//                    description, preprocessing (JSON), count, status="complete" (last)
//     /pixels        uint8 [total bytes], contiguous, uncompressed: every image's CHW bytes,
//                    one after the other
//     /offsets       int64 [N]     where image i starts in /pixels
//     /shapes        int64 [N, 3]  its C, H, W (sizes may vary: detection data)
//     /ok            uint8 [N]: 0 = the image could not be read (kept only with skip_bad)
//     /names         strings [N]: the examples' names (relative paths)
// Labels and detection targets are not cached: they come from the dataset's annotations, which
// are in memory.
//
// and shared by every trial and rank. The file is built under an exclusive lock
// (<cache_dir>/images-<key>.lock; concurrent creators wait on it), written to
// images-<key>.h5.tmp.<host>.<pid> (util/atomic_file.h), fsynced and renamed, so a file at the
// final name is complete. Readers take the pixel data's file offset from HDF5 once and then read
// images with pread(2), which is thread-safe and needs no HDF5 call per image. Normalization
// happens after reading (loader.h), so results through the cache are bit-identical to decoding.
#pragma once

#include <memory>
#include <string>

#include "mpq/data/dataset.h"

namespace mpq::store {

struct ImageCacheOptions {
  int workers = 1;        ///< decoding threads while building
  bool skip_bad = false;  ///< keep going past bad images (marked in /ok) instead of failing
};

/// The cached copy of `view` (building it if absent). The returned dataset has the same
/// fingerprint, labels, names and preprocessing as `view` and keeps `view` alive. `built`
/// (optional) tells whether this call built the file. Throws InputError (naming the image) if
/// building fails; no file is left at the final name then.
std::unique_ptr<data::Dataset> cached_images(std::shared_ptr<const data::Dataset> view,
                                             const std::string& cache_dir,
                                             const ImageCacheOptions& options,
                                             bool* built = nullptr);

}  // namespace mpq::store
