// ProcessMemory: /proc/<pid>/status parsing, and the figures of this process moving with a
// shared memfd mapping the way guest RAM does.
#include "hvmm/vmm/host/process_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace hvmm::vmm {
namespace {

constexpr const char* kStatus =
    "Name:\thvmm\nVmPeak:\t  100 kB\nVmHWM:\t    9000 kB\nVmRSS:\t    8000 kB\n"
    "RssAnon:\t    1000 kB\nRssFile:\t    2000 kB\nRssShmem:\t    5000 kB\nThreads:\t3\n";

// Every field is read in bytes from its "kB" line.
TEST(ProcessMemory, ParsesStatusFields) {
  auto memory = parse_process_status(kStatus);
  ASSERT_TRUE(memory.ok()) << memory.error().message;
  EXPECT_EQ(memory->rss, 8000u * 1024);
  EXPECT_EQ(memory->rss_peak, 9000u * 1024);
  EXPECT_EQ(memory->rss_anon, 1000u * 1024);
  EXPECT_EQ(memory->rss_file, 2000u * 1024);
  EXPECT_EQ(memory->rss_shmem, 5000u * 1024);
}

// A missing or malformed field is an error that names it, not a zero.
TEST(ProcessMemory, MissingOrMalformedFieldIsNamed) {
  auto missing = parse_process_status("VmRSS:\t1 kB\nVmHWM:\t1 kB\nRssAnon:\t1 kB\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("RssFile"), std::string::npos);
  auto malformed = parse_process_status(
      "VmRSS:\tmany kB\nVmHWM:\t1 kB\nRssAnon:\t1 kB\nRssFile:\t1 kB\nRssShmem:\t1 kB\n");
  ASSERT_FALSE(malformed.ok());
  EXPECT_NE(malformed.error().message.find("VmRSS"), std::string::npos);
  // A longer field name sharing the prefix is not the field.
  auto prefixed = parse_process_status(
      "VmRSSX:\t1 kB\nVmHWM:\t1 kB\nRssAnon:\t1 kB\nRssFile:\t1 kB\nRssShmem:\t1 kB\n");
  EXPECT_FALSE(prefixed.ok());
}

// Touching 32 MiB of a shared memfd mapping raises RssShmem by about that much, and
// punching the hole brings it back down: the figure the balloon tests rely on.
TEST(ProcessMemory, RssShmemFollowsAMemfd) {
  constexpr size_t kSize = 32u << 20;
  const int fd = memfd_create("process-memory-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kSize), 0);
  void* map = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  auto before = read_process_memory();
  ASSERT_TRUE(before.ok()) << before.error().message;
  std::memset(map, 0x5a, kSize);
  auto touched = read_process_memory();
  ASSERT_TRUE(touched.ok());
  EXPECT_GE(touched->rss_shmem, before->rss_shmem + kSize - (2u << 20));
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, kSize), 0);
  auto released = read_process_memory();
  ASSERT_TRUE(released.ok());
  EXPECT_LE(released->rss_shmem, before->rss_shmem + (2u << 20));
  EXPECT_GE(released->rss_peak + (2u << 20), touched->rss);  // counters are batched per CPU
  munmap(map, kSize);
  close(fd);
}

}  // namespace
}  // namespace hvmm::vmm
