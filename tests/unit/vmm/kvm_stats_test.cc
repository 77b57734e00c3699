// Tests of the KVM binary stats reader against hand-built stats files in the layout of
// linux/kvm.h (kvm_stats_header, kvm_stats_desc, Documentation/virt/kvm/api.rst): the
// descriptors and the id are found wherever the header puts them, values are read by name
// from the data block (through a real fd: a memfd holding the blob), and every malformed
// header or descriptor is an error naming what was wrong, never an out-of-bounds read.
#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "hvmm/vmm/kvm/kvm_stats.h"

namespace hvmm::vmm {
namespace {

constexpr uint32_t kNameSize = 48;  // KVM_STATS_NAME_SIZE

// One statistic to put in a blob: its name, values and flags.
struct Stat {
  std::string name;
  std::vector<uint64_t> values;
  uint32_t flags = KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_NONE | KVM_STATS_BASE_POW10;
};

// A stats file laid out as KVM lays it out (header, id, descriptors, data), except that the
// parts are placed with gaps, in the order id, data, descriptors: the reader must follow the
// header's offsets, not assume an order.
struct Blob {
  std::vector<uint8_t> bytes;
  KvmStatsHeaderWire header{};

  static Blob make(const std::string& id, const std::vector<Stat>& stats) {
    Blob blob;
    KvmStatsHeaderWire& h = blob.header;
    h.name_size = kNameSize;
    h.num_desc = static_cast<uint32_t>(stats.size());
    h.id_offset = 64;
    h.data_offset = h.id_offset + kNameSize + 8;
    uint32_t data_size = 0;
    for (const Stat& stat : stats)
      data_size += static_cast<uint32_t>(stat.values.size() * 8);
    h.desc_offset = h.data_offset + data_size + 24;
    const size_t stride = sizeof(KvmStatsDescWire) + kNameSize;
    blob.bytes.assign(h.desc_offset + stride * stats.size(), 0xa5);
    std::memset(blob.bytes.data() + h.id_offset, 0, kNameSize);
    std::memcpy(blob.bytes.data() + h.id_offset, id.data(), id.size());
    uint32_t offset = 0;
    for (size_t i = 0; i < stats.size(); ++i) {
      KvmStatsDescWire desc{stats[i].flags, 0, static_cast<uint16_t>(stats[i].values.size()),
                            offset, 0};
      uint8_t* at = blob.bytes.data() + h.desc_offset + i * stride;
      std::memcpy(at, &desc, sizeof(desc));
      std::memset(at + sizeof(desc), 0, kNameSize);
      std::memcpy(at + sizeof(desc), stats[i].name.data(), stats[i].name.size());
      std::memcpy(blob.bytes.data() + h.data_offset + offset, stats[i].values.data(),
                  stats[i].values.size() * 8);
      offset += static_cast<uint32_t>(stats[i].values.size() * 8);
    }
    blob.write_header();
    return blob;
  }
  void write_header() { std::memcpy(bytes.data(), &header, sizeof(header)); }
  // Descriptor `i`'s fixed part, to corrupt it.
  KvmStatsDescWire* desc(size_t i) {
    return reinterpret_cast<KvmStatsDescWire*>(bytes.data() + header.desc_offset +
                                               i * (sizeof(KvmStatsDescWire) + kNameSize));
  }
  char* desc_name(size_t i) { return reinterpret_cast<char*>(desc(i) + 1); }
  // A reader over the blob, failing like a short file past its end.
  KvmStatsReadAt reader() const {
    return [this](uint64_t offset, std::span<uint8_t> out) -> Result<void> {
      if (offset > bytes.size() || out.size() > bytes.size() - offset)
        return make_error(ErrorCode::kInternal, "past the end");
      if (!out.empty())  // an empty span's data() may be null, which memcpy must not see
        std::memcpy(out.data(), bytes.data() + offset, out.size());
      return Ok();
    };
  }
};

// What KVM's x86 VM file holds, in part.
std::vector<Stat> vm_stats() {
  return {{"remote_tlb_flush", {7}},
          {"pages_4k", {12345}, KVM_STATS_TYPE_INSTANT},
          {"pages_2m", {17}, KVM_STATS_TYPE_INSTANT},
          {"pages_1g", {0}, KVM_STATS_TYPE_INSTANT},
          {"halt_poll_success_hist", {1, 2, 3, 4}, KVM_STATS_TYPE_LOG_HIST}};
}

// Every descriptor is read with its name, flags, offset and size, and the id with it.
TEST(KvmStats, LayoutFollowsTheHeader) {
  const Blob blob = Blob::make("kvm-1234", vm_stats());
  auto layout = read_kvm_stats_layout(blob.reader());
  ASSERT_TRUE(layout.ok()) << layout.error().message;
  EXPECT_EQ(layout->id, "kvm-1234");
  ASSERT_EQ(layout->fields.size(), 5u);
  EXPECT_EQ(layout->data_offset, blob.header.data_offset);
  EXPECT_EQ(layout->data_size, 8u * 8u);
  const KvmStatField* pages_2m = layout->find("pages_2m");
  ASSERT_NE(pages_2m, nullptr);
  EXPECT_EQ(pages_2m->offset, 16u);
  EXPECT_EQ(pages_2m->size, 1u);
  EXPECT_EQ(pages_2m->flags, uint32_t{KVM_STATS_TYPE_INSTANT});
  const KvmStatField* hist = layout->find("halt_poll_success_hist");
  ASSERT_NE(hist, nullptr);
  EXPECT_EQ(hist->size, 4u);
  EXPECT_EQ(layout->find("pf_fixed"), nullptr);
}

// Through a file descriptor: one pread of the data block gives each name's first value, a
// name the file lacks reads as nothing, and a changed data block is seen by the next read.
TEST(KvmStats, ValuesAreReadByName) {
  const Blob blob = Blob::make("kvm-1/vcpu-0", vm_stats());
  UniqueFd fd(::memfd_create("kvm-stats-test", MFD_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::pwrite(fd.get(), blob.bytes.data(), blob.bytes.size(), 0),
            static_cast<ssize_t>(blob.bytes.size()));
  const int raw = fd.get();
  auto file = KvmStatsFile::adopt(std::move(fd), "a test file");
  ASSERT_TRUE(file.ok()) << file.error().message;
  const std::string_view names[] = {"pages_4k", "pages_2m", "pf_fixed", "halt_poll_success_hist"};
  auto values = file->read(names);
  ASSERT_TRUE(values.ok()) << values.error().message;
  EXPECT_EQ((*values)[0], 12345u);
  EXPECT_EQ((*values)[1], 17u);
  EXPECT_EQ((*values)[2], std::nullopt);
  EXPECT_EQ((*values)[3], 1u);
  const uint64_t now = 99;
  ASSERT_EQ(::pwrite(raw, &now, 8, blob.header.data_offset + 8), 8);
  auto again = file->read(names);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0], 99u);
}

// A file with no statistics at all is valid and reads nothing.
TEST(KvmStats, EmptyFileIsValid) {
  const Blob blob = Blob::make("kvm-1", {});
  auto layout = read_kvm_stats_layout(blob.reader());
  ASSERT_TRUE(layout.ok()) << layout.error().message;
  EXPECT_TRUE(layout->fields.empty());
  EXPECT_EQ(layout->data_size, 0u);
}

// Each corruption of the header or a descriptor is refused with a message naming it.
TEST(KvmStats, MalformedFilesAreRefused) {
  struct Case {
    const char* what;
    void (*corrupt)(Blob&);
    const char* says;
  };
  const Case cases[] = {
      {"name_size 0",
       [](Blob& b) {
         b.header.name_size = 0;
         b.write_header();
       },
       "name_size 0"},
      {"name_size huge",
       [](Blob& b) {
         b.header.name_size = 1 << 20;
         b.write_header();
       },
       "name_size 1048576"},
      {"num_desc huge",
       [](Blob& b) {
         b.header.num_desc = 1 << 30;
         b.write_header();
       },
       "num_desc 1073741824"},
      {"descriptors past the end",
       [](Blob& b) {
         b.header.num_desc += 1;
         b.write_header();
       },
       "past the end"},
      {"id inside the header",
       [](Blob& b) {
         b.header.id_offset = 8;
         b.write_header();
       },
       "inside the header"},
      {"id not terminated",
       [](Blob& b) { std::memset(b.bytes.data() + b.header.id_offset, 'x', kNameSize); },
       "the id is not NUL-terminated"},
      {"name not terminated", [](Blob& b) { std::memset(b.desc_name(1), 'n', kNameSize); },
       "name is not NUL-terminated"},
      {"empty name", [](Blob& b) { b.desc_name(2)[0] = '\0'; }, "descriptor 2 has an empty name"},
      {"size 0", [](Blob& b) { b.desc(1)->size = 0; }, "descriptor 1 (pages_4k) has size 0"},
      {"misaligned offset", [](Blob& b) { b.desc(0)->offset = 4; }, "not a multiple of 8"},
      {"data past 4 GiB", [](Blob& b) { b.desc(3)->offset = 0xfffffff8; }, "past 4 GiB"},
  };
  for (const Case& c : cases) {
    Blob blob = Blob::make("kvm-1", vm_stats());
    c.corrupt(blob);
    auto layout = read_kvm_stats_layout(blob.reader());
    ASSERT_FALSE(layout.ok()) << c.what << " was accepted";
    EXPECT_NE(layout.error().message.find(c.says), std::string::npos)
        << c.what << ": " << layout.error().message;
  }
}

// A data block the descriptors place past the end of the file fails the read, not the open.
TEST(KvmStats, ShortDataBlockFailsTheRead) {
  Blob blob = Blob::make("kvm-1", vm_stats());
  blob.desc(4)->offset = 4096;  // far past the file's end
  UniqueFd fd(::memfd_create("kvm-stats-short", MFD_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::pwrite(fd.get(), blob.bytes.data(), blob.bytes.size(), 0),
            static_cast<ssize_t>(blob.bytes.size()));
  auto file = KvmStatsFile::adopt(std::move(fd), "a short file");
  ASSERT_TRUE(file.ok()) << file.error().message;
  const std::string_view names[] = {"pages_4k"};
  auto values = file->read(names);
  ASSERT_FALSE(values.ok());
  EXPECT_NE(values.error().message.find("a short file"), std::string::npos)
      << values.error().message;
}

}  // namespace
}  // namespace hvmm::vmm
