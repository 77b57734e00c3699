// KvmStatsFile: KVM's binary statistics of one VM or vCPU (KVM_GET_STATS_FD, Linux 5.14+).
//
// The file is a header, an id string, an array of descriptors and a data block
// (Documentation/virt/kvm/api.rst, "KVM_GET_STATS_FD"; struct kvm_stats_header and
// kvm_stats_desc in linux/kvm.h): the header gives the name size and the offsets of the
// other three parts, each descriptor names one statistic, its offset into the data block
// and its number of u64 values. Only the data block changes while the VM runs, so the
// layout is read and checked once when the file is opened and a reading is one pread of
// the data block. Every offset and size in the file is checked before use: a malformed file
// is an error naming the field, never an out-of-bounds read.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {

// The fixed part of the file's header and of each descriptor, as linux/kvm.h lays them out
// (declared here: the uapi descriptor ends in a flexible array that C++ sizes differently).
struct KvmStatsHeaderWire {
  uint32_t flags;
  uint32_t name_size;
  uint32_t num_desc;
  uint32_t id_offset;
  uint32_t desc_offset;
  uint32_t data_offset;
};
struct KvmStatsDescWire {
  uint32_t flags;
  int16_t exponent;
  uint16_t size;    // u64 values
  uint32_t offset;  // into the data block
  uint32_t bucket_size;
  // followed by name_size bytes of NUL-terminated name
};
static_assert(sizeof(KvmStatsHeaderWire) == 24);
static_assert(sizeof(KvmStatsDescWire) == 16);

// Limits beyond which a stats file is taken as malformed (KVM uses a 48-byte name and about
// 20 VM and 30 vCPU statistics on x86).
inline constexpr uint32_t kKvmStatsMaxNameSize = 256;
inline constexpr uint32_t kKvmStatsMaxDescriptors = 4096;

// One statistic of the file.
struct KvmStatField {
  std::string name;
  uint32_t flags = 0;   // KVM_STATS_TYPE_* | KVM_STATS_UNIT_* | KVM_STATS_BASE_*
  uint32_t offset = 0;  // bytes into the data block
  uint16_t size = 0;    // u64 values (1 for counters, more for histograms)
};

// What the header and the descriptors say: fixed for the file's life.
struct KvmStatsLayout {
  std::string id;  // "kvm-<pid>" for a VM, "kvm-<pid>/vcpu-<n>" for a vCPU
  uint32_t data_offset = 0;
  uint32_t data_size = 0;  // bytes of the data block the descriptors cover
  std::vector<KvmStatField> fields;

  // The field called `name`, or nullptr.
  const KvmStatField* find(std::string_view name) const;
};

// Reads `out.size()` bytes at `offset` of a stats file (pread on the fd; a blob in tests).
using KvmStatsReadAt = std::function<Result<void>(uint64_t offset, std::span<uint8_t> out)>;

// Read and check the header, the id and every descriptor through `read_at`.
Result<KvmStatsLayout> read_kvm_stats_layout(const KvmStatsReadAt& read_at);

class KvmStatsFile {
 public:
  // KVM_GET_STATS_FD on `fd` (a VM or vCPU fd; `what` names it in errors), then its layout.
  static Result<KvmStatsFile> open(int fd, const std::string& what);
  // Read the layout of `stats`, an open stats file (or, in tests, a file holding one).
  static Result<KvmStatsFile> adopt(UniqueFd stats, const std::string& what);

  const KvmStatsLayout& layout() const { return layout_; }
  // The first value of each statistic of `names` (nullopt for a name the file lacks), from
  // one pread of the data block. Thread-safe.
  Result<std::vector<std::optional<uint64_t>>> read(std::span<const std::string_view> names) const;

 private:
  KvmStatsFile(UniqueFd fd, KvmStatsLayout layout, std::string what)
      : fd_(std::move(fd)), layout_(std::move(layout)), what_(std::move(what)) {}

  UniqueFd fd_;
  KvmStatsLayout layout_;
  std::string what_;
};

}  // namespace hvmm::vmm
