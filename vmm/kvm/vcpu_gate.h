// VcpuGate: stop-the-world for vCPU threads, around changes KVM cannot apply atomically.
//
// KVM has no atomic memslot update: splitting a slot means deleting it and creating the
// pieces, and a vCPU running in between finds no memory at all (even its code page, which
// ends in an emulation failure). So a layout change (RAM regions and their memslots) is
// fenced; page-state changes never touch a memslot and need none. pause() kicks every vCPU
// out of KVM_RUN and returns once each one is parked at its checkpoint (or is the calling
// thread, or has exited); resume() lets them run again. Pauses nest.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>

namespace hvmm::vmm {

class VcpuGate {
 public:
  // A vCPU thread's membership, held for the life of its run loop.
  class Member {
   public:
    explicit Member(VcpuGate& gate);
    ~Member();
    Member(const Member&) = delete;
    Member& operator=(const Member&) = delete;

   private:
    VcpuGate& gate_;
  };

  // Called by a member before each KVM_RUN: parks while a pause is in effect.
  void checkpoint();
  // Stop the world: call `kick_all` (which must make every vCPU leave KVM_RUN promptly) and
  // wait until every other member is parked.
  void pause(const std::function<void()>& kick_all);
  // End one pause; `unkick_all` runs before the members are released by the last one.
  void resume(const std::function<void()>& unkick_all);

 private:
  std::mutex lock_;
  std::condition_variable changed_;
  unsigned members_ = 0;
  unsigned parked_ = 0;
  unsigned pauses_ = 0;
};

}  // namespace hvmm::vmm
