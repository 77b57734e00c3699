// UniqueFd and Mapping: RAII owners of a file descriptor and of an mmap'ed region.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace hvmm::vmm {

// UniqueFd closes its descriptor when destroyed; it is move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset(std::exchange(other.fd_, -1));
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Close the current descriptor (if any) and own `fd` instead.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Mapping unmaps its region when destroyed; it is move-only.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* address, size_t size) : address_(address), size_(size) {}
  ~Mapping() { reset(); }
  Mapping(Mapping&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept {
    if (this != &other) {
      reset();
      address_ = std::exchange(other.address_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  uint8_t* data() const { return static_cast<uint8_t*>(address_); }
  size_t size() const { return size_; }
  // Unmap the region now.
  void reset();

 private:
  void* address_ = nullptr;
  size_t size_ = 0;
};

}  // namespace hvmm::vmm
