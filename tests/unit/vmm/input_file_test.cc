// Tests of the input files of `hvmm run`: only regular files are opened, sizes are checked
// from fstat() before anything is allocated, and the bytes are read in bounded chunks.
#include "hvmm/vmm/boot/input_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "test_support.h"

namespace hvmm::vmm {
namespace {

using testing::run_with_timeout;

// A unique path in the temp directory, removed with the object.
struct TempName {
  explicit TempName(const char* tag)
      : path(fmt::format("/tmp/hvmm-input-file-{}-{}", ::getpid(), tag)) {
    std::remove(path.c_str());
  }
  ~TempName() { std::remove(path.c_str()); }
  std::string path;
};

constexpr uint64_t kRam = 128 << 20;

// The error message of reading `path` as --initrd with 128 MiB of RAM, "" on success.
std::string read_error(const std::string& path) {
  auto data = read_file(path, "initrd", kRam);
  return data ? "" : data.error().message;
}

// A regular file bigger than one read chunk comes back byte for byte.
TEST(InputFile, ReadsRegularFileInChunks) {
  TempName name("regular");
  std::vector<uint8_t> contents(3 * kInputReadChunk + 5);
  for (size_t i = 0; i < contents.size(); ++i) {
    contents[i] = static_cast<uint8_t>(i * 7);
  }
  FILE* file = std::fopen(name.path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(std::fwrite(contents.data(), 1, contents.size(), file), contents.size());
  std::fclose(file);
  auto data = read_file(name.path, "initrd", kRam);
  ASSERT_TRUE(data.ok()) << data.error().message;
  EXPECT_EQ(*data, contents);
}

// A 1 TiB sparse file is refused from its size alone, naming the file and both sizes.
TEST(InputFile, RefusesFileLargerThanRam) {
  TempName name("sparse");
  {
    UniqueFd fd(::open(name.path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::ftruncate(fd.get(), int64_t{1} << 40), 0);
  }
  EXPECT_EQ(read_error(name.path),
            fmt::format("initrd: '{}' is 1099511627776 bytes (1T), larger than the guest's RAM "
                        "of 134217728 bytes (128M) (raise memory_bytes or use a smaller file)",
                        name.path));
}

// A file exactly the size of RAM passes the size check (the limit is inclusive).
TEST(InputFile, FileOfRamSizeFits) {
  TempName name("exact");
  UniqueFd fd(::open(name.path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_EQ(::ftruncate(fd.get(), 4 << 20), 0);
  auto file = open_input_file(name.path, "kernel");
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->size, 4u << 20);
  EXPECT_TRUE(check_fits_in_ram(*file, 4 << 20).ok());
  EXPECT_FALSE(check_fits_in_ram(*file, (4 << 20) - 4096).ok());
}

// A FIFO is refused at once (opening it for reading would wait for a writer).
TEST(InputFile, RefusesFifoWithoutHanging) {
  TempName name("fifo");
  ASSERT_EQ(::mkfifo(name.path.c_str(), 0600), 0);
  int code = run_with_timeout([&] {
    auto data = read_file(name.path, "kernel", kRam);
    bool named =
        !data && data.error().message == fmt::format(
                                             "kernel: '{}' is a FIFO (named pipe), not a regular "
                                             "file",
                                             name.path);
    return named ? 0 : 1;
  });
  EXPECT_EQ(code, 0) << (code < 0 ? "read_file hung on a FIFO" : "wrong or no error");
}

// Device nodes are refused as such, never read (/dev/zero would never end).
TEST(InputFile, RefusesDeviceNodes) {
  EXPECT_EQ(read_error("/dev/null"),
            "initrd: '/dev/null' is a character device, not a regular file");
  int code = run_with_timeout([] { return read_file("/dev/zero", "initrd", kRam).ok(); });
  EXPECT_EQ(code, 0);
}

// A directory is refused naming what it is.
TEST(InputFile, RefusesDirectory) {
  EXPECT_EQ(read_error("/tmp"), "initrd: '/tmp' is a directory, not a regular file");
}

// A missing file is named with its field and the system's reason.
TEST(InputFile, MissingFileNamed) {
  EXPECT_EQ(read_error("/nonexistent/initrd"),
            "initrd: cannot open '/nonexistent/initrd': No such file or directory");
}

// Sizes are described exactly, with the largest unit that divides them.
TEST(InputFile, DescribesSizes) {
  EXPECT_EQ(describe_size(0), "0 bytes");
  EXPECT_EQ(describe_size(1000), "1000 bytes");
  EXPECT_EQ(describe_size(3072), "3072 bytes (3K)");
  EXPECT_EQ(describe_size(uint64_t{64} << 20), "67108864 bytes (64M)");
  EXPECT_EQ(describe_size(uint64_t{1} << 40), "1099511627776 bytes (1T)");
}

}  // namespace
}  // namespace hvmm::vmm
