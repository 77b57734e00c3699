// Tests of the pool's swap file (vmm/reclaim/pool/swap_file.h): what it refuses, the
// truncation at open and close, its extents and I/O.
#include "hvmm/vmm/reclaim/pool/swap_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <vector>

#include "pool_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::TempDir;

// The size of the file at `path` (-1 when it cannot be stat()ed).
off_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

// The message of opening `path`, which must be refused and name the path.
std::string refusal(const std::string& path) {
  auto opened = SwapFile::open(path);
  EXPECT_FALSE(opened.ok()) << path;
  if (opened.ok()) {
    return "";
  }
  EXPECT_NE(opened.error().message.find(path), std::string::npos) << opened.error().message;
  return opened.error().message;
}

// A FIFO, a device node, a directory and a path in a missing directory are refused, each
// with its reason; the FIFO is refused without waiting for a writer.
TEST(SwapFile, RefusesWhatIsNotARegularFile) {
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(refusal(fifo).find("a FIFO"), std::string::npos);
  EXPECT_NE(refusal("/dev/null").find("a character device"), std::string::npos);
  EXPECT_NE(refusal(dir.path).find("a directory"), std::string::npos);
  EXPECT_NE(refusal(dir.file("missing/swap")).find("its directory does not exist"),
            std::string::npos);
}

// A file another holder has open as its swap file is refused; once that holder closes it,
// it can be opened again.
TEST(SwapFile, RefusesAFileLockedByAnotherHolder) {
  TempDir dir;
  const std::string path = dir.file("swap");
  {
    auto first = SwapFile::open(path);
    ASSERT_TRUE(first.ok()) << first.error().message;
    EXPECT_NE(refusal(path).find("locked by another holder"), std::string::npos);
  }
  auto again = SwapFile::open(path);
  EXPECT_TRUE(again.ok()) << again.error().message;
}

// A 1 TiB sparse file given as the path is simply truncated to 0, as is the file at close.
TEST(SwapFile, TruncatesAtOpenAndClose) {
  TempDir dir;
  const std::string path = dir.file("big");
  {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, off_t{1} << 40), 0);
    ::close(fd);
  }
  ASSERT_EQ(file_size(path), off_t{1} << 40);
  {
    auto swap = SwapFile::open(path);
    ASSERT_TRUE(swap.ok()) << swap.error().message;
    EXPECT_EQ(file_size(path), 0);
    auto extent = swap->acquire(kPageSize);
    ASSERT_TRUE(extent.ok());
    const std::vector<uint8_t> data(100, 0xab);
    ASSERT_TRUE(swap->write(extent->offset, data).ok());
    EXPECT_EQ(file_size(path), 100);
  }
  EXPECT_EQ(file_size(path), 0);
}

// Written bytes read back; a read past the end is kDataLoss (short read); a released extent
// is punched (no longer allocated) and handed out again.
TEST(SwapFile, ExtentsReadBackArePunchedAndReused) {
  TempDir dir;
  auto swap = SwapFile::open(dir.file("swap"));
  ASSERT_TRUE(swap.ok()) << swap.error().message;
  auto a = swap->acquire(2 * kPageSize);
  auto b = swap->acquire(2 * kPageSize);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->offset, b->offset);
  const std::vector<uint8_t> data(2 * kPageSize, 0x5c);
  ASSERT_TRUE(swap->write(a->offset, data).ok());
  ASSERT_TRUE(swap->write(b->offset, data).ok());
  std::vector<uint8_t> back(2 * kPageSize);
  ASSERT_TRUE(swap->read(a->offset, back).ok());
  EXPECT_EQ(back, data);
  auto past = swap->read(b->offset + kPageSize, back);
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.error().code, ErrorCode::kDataLoss);
  EXPECT_NE(past.error().message.find("short read"), std::string::npos);

  const uint64_t allocated = swap->allocated_bytes();
  const uint64_t a_offset = a->offset;
  swap->release(std::move(*a), 2 * kPageSize);
  EXPECT_LE(swap->allocated_bytes() + 2 * kPageSize, allocated);
  auto reused = swap->acquire(2 * kPageSize);
  ASSERT_TRUE(reused.ok());
  EXPECT_EQ(reused->offset, a_offset);
}

}  // namespace
}  // namespace hvmm::vmm
