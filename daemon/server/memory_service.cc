// hvmm.v1.MemoryService (services.h).
#include <boost/asio/steady_timer.hpp>

#include "hvmm/daemon/server/services.h"

namespace hvmm::daemon {

namespace {

constexpr std::chrono::milliseconds kDefaultBalloonDeadline(60000);
constexpr std::chrono::milliseconds kDefaultBalloonInterval(100);

// WatchBalloon on the loop: set the target (if asked), then poll GetMemoryStats every
// `interval` and stream the balloon's progress until it holds the target or `deadline`.
class BalloonWatch : public std::enable_shared_from_this<BalloonWatch> {
 public:
  using Stream = QueuedStream<hvmm::v1::BalloonProgress>::State;

  BalloonWatch(Backend& backend, hvmm::v1::WatchBalloonRequest request,
               std::shared_ptr<Stream> stream)
      : backend_(backend),
        request_(std::move(request)),
        stream_(std::move(stream)),
        timer_(backend.io),
        interval_(request_.interval_ms() != 0 ? std::chrono::milliseconds(request_.interval_ms())
                                              : kDefaultBalloonInterval),
        budget_(request_.deadline_ms() != 0 ? std::chrono::milliseconds(request_.deadline_ms())
                                            : kDefaultBalloonDeadline),
        deadline_(std::chrono::steady_clock::now() + budget_) {}

  void begin() {
    if (!request_.has_target_bytes()) {
      poll();
      return;
    }
    supervisor::Request message;
    auto* set = message.mutable_set_balloon_target();
    set->set_name(request_.name());
    set->set_target_bytes(request_.target_bytes());
    auto self = shared_from_this();
    backend_.vms.forward(
        request_.name(), [this](const VmFacts& facts) { return check_request(request_, facts); },
        std::move(message), answer_deadline(),
        [self](const grpc::Status& status, supervisor::Response*) {
          if (!status.ok()) {
            self->stream_->finish(status);
            return;
          }
          self->poll();
        });
  }

 private:
  Deadline answer_deadline() const {
    return std::min(deadline_, std::chrono::steady_clock::now() + backend_.request_deadline);
  }

  void poll() {
    if (stream_->closed()) {
      return;  // the client left
    }
    supervisor::Request message;
    message.mutable_get_memory_stats()->set_name(request_.name());
    auto self = shared_from_this();
    backend_.vms.forward(request_.name(), nullptr, std::move(message), answer_deadline(),
                         [self](const grpc::Status& status, supervisor::Response* response) {
                           if (!status.ok()) {
                             self->stream_->finish(status);
                             return;
                           }
                           self->report(response->get_memory_stats().stats());
                         });
  }

  void report(const hvmm::v1::MemoryStats& stats) {
    hvmm::v1::BalloonProgress progress;
    uint64_t target = request_.has_target_bytes() ? request_.target_bytes() & ~(kPageSize - 1)
                                                  : stats.balloon().target_bytes();
    progress.set_target_bytes(target);
    progress.set_actual_bytes(stats.balloon().actual_bytes());
    progress.set_host_rss_bytes(stats.host().rss_bytes());
    progress.set_reached(stats.balloon().actual_bytes() == target);
    bool reached = progress.reached();
    stream_->push(std::move(progress));
    if (reached) {
      stream_->finish(grpc::Status::OK);
      return;
    }
    if (std::chrono::steady_clock::now() + interval_ > deadline_) {
      stream_->finish(grpc::Status(
          grpc::StatusCode::DEADLINE_EXCEEDED,
          "deadline_ms: the balloon holds " + std::to_string(stats.balloon().actual_bytes()) +
              " of " + std::to_string(target) + " bytes after " + std::to_string(budget_.count()) +
              " ms (the target stays set)"));
      return;
    }
    timer_.expires_after(interval_);
    auto self = shared_from_this();
    timer_.async_wait([self](const boost::system::error_code& error) {
      if (!error) {
        self->poll();
      }
    });
  }

  Backend& backend_;
  hvmm::v1::WatchBalloonRequest request_;
  std::shared_ptr<Stream> stream_;
  boost::asio::steady_timer timer_;
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds budget_;
  Deadline deadline_;
};

}  // namespace

grpc::ServerUnaryReactor* MemoryServiceImpl::GetMemoryStats(
    grpc::CallbackServerContext* context, const hvmm::v1::GetMemoryStatsRequest* request,
    hvmm::v1::GetMemoryStatsResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(get_memory_stats));
}

grpc::ServerUnaryReactor* MemoryServiceImpl::SetBalloonTarget(
    grpc::CallbackServerContext* context, const hvmm::v1::SetBalloonTargetRequest* request,
    hvmm::v1::SetBalloonTargetResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(set_balloon_target),
                       std::chrono::milliseconds(request->wait_ms()));
}

grpc::ServerWriteReactor<hvmm::v1::BalloonProgress>* MemoryServiceImpl::WatchBalloon(
    grpc::CallbackServerContext*, const hvmm::v1::WatchBalloonRequest* request) {
  auto name = check_vm_name_lookup("name", request->name());
  if (!name) {
    return finish_stream_now<hvmm::v1::BalloonProgress>(to_status(name.error()));
  }
  QueuedStream<hvmm::v1::BalloonProgress>::Options options;
  options.capacity = 64;  // one message per poll; a slow client only misses updates
  options.policy = OverflowPolicy::kDropMessages;
  auto started = QueuedStream<hvmm::v1::BalloonProgress>::start(std::move(options));
  backend_.on_loop([this, copy = *request, state = started.state] {
    std::make_shared<BalloonWatch>(backend_, copy, state)->begin();
  });
  return started.reactor;
}

grpc::ServerUnaryReactor* MemoryServiceImpl::Reclaim(grpc::CallbackServerContext* context,
                                                     const hvmm::v1::ReclaimRequest* request,
                                                     hvmm::v1::ReclaimResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(reclaim));
}

grpc::ServerUnaryReactor* MemoryServiceImpl::DumpStage2(grpc::CallbackServerContext* context,
                                                        const hvmm::v1::DumpStage2Request* request,
                                                        hvmm::v1::DumpStage2Response* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(dump_stage2));
}

grpc::ServerUnaryReactor* MemoryServiceImpl::GetDirtyLog(
    grpc::CallbackServerContext* context, const hvmm::v1::GetDirtyLogRequest* request,
    hvmm::v1::GetDirtyLogResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(get_dirty_log));
}

}  // namespace hvmm::daemon
