#include "node/file_backend.hpp"

#include "node/quantise.hpp"

#include <sndfile.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace rtpnode {

namespace {

std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string lower_extension(const std::string& path) {
  const auto dot = path.rfind('.');
  const auto slash = path.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return {};
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

}  // namespace

FileBackend::Options FileBackend::options_from(const NodeConfig& cfg) {
  Options o;
  o.path = cfg.output;
  o.format = cfg.output_format;
  if (cfg.rate > 0) o.rate = cfg.rate;
  o.channels = cfg.channels;
  if (cfg.period > 0) o.period = cfg.period;
  if (cfg.offline()) o.pacing = Pacing::driven;
  return o;
}

FileBackend::FileBackend(Options o) : o_(std::move(o)) {
  const std::string where = "--output " + o_.path + ": ";
  const std::string ext = lower_extension(o_.path);
  int container = 0;
  if (ext == "wav")
    container = SF_FORMAT_WAV;
  else if (ext == "rf64")
    container = SF_FORMAT_RF64;
  else if (ext == "flac")
    container = SF_FORMAT_FLAC;
  else
    throw DeviceError(where + "the file name must end in .wav, .rf64 or .flac");
  int sub = 0;
  if (o_.format == "s16")
    sub = SF_FORMAT_PCM_16;
  else if (o_.format == "s24")
    sub = SF_FORMAT_PCM_24;
  else if (o_.format == "f32" && container != SF_FORMAT_FLAC)
    sub = SF_FORMAT_FLOAT;
  else
    throw DeviceError(where + "--output-format " + o_.format +
                      " is not possible here (s16, s24; f32 for .wav and .rf64)");
  if (!(o_.rate >= 8000 && o_.rate <= 384000) || std::floor(o_.rate) != o_.rate)
    throw DeviceError(where + "--rate must be a whole number of Hz in 8000..384000");
  if (o_.channels < 1 || o_.channels > 64) throw DeviceError(where + "--channels must be 1..64");
  if (o_.period < 16 || o_.period > 16384)
    throw DeviceError(where + "--period must be 16..16384 frames");
  SF_INFO info{};
  info.samplerate = static_cast<int>(o_.rate);
  info.channels = o_.channels;
  info.format = container | sub;
  if (sf_format_check(&info) == 0) throw DeviceError(where + "libsndfile cannot write this format");
  file_ = sf_open(o_.path.c_str(), SFM_WRITE, &info);
  if (file_ == nullptr)
    throw DeviceError(where + "cannot create the file: " + sf_strerror(nullptr));
  const auto samples = static_cast<std::size_t>(o_.period) * static_cast<std::size_t>(o_.channels);
  block_.assign(samples, 0.0f);
  if (sub == SF_FORMAT_PCM_16) s16_.assign(samples, 0);
  if (sub == SF_FORMAT_PCM_24) s32_.assign(samples, 0);
}

FileBackend::~FileBackend() {
  (void)shutdown(std::chrono::seconds(2), false);
}

void FileBackend::open(Mixer& mixer) {
  mixer_ = &mixer;
}

void FileBackend::start() {
  if (started_ || mixer_ == nullptr) return;
  started_ = true;
  start_ns_ = monotonic_ns();
  if (o_.pacing == Pacing::real_time) thread_ = std::thread([this] { run_real_time(); });
}

bool FileBackend::write_block(std::uint64_t index, bool xrun) {
  BlockTiming t;
  t.current_time = static_cast<double>(index) * o_.period / o_.rate;
  t.dac_time = t.current_time;
  t.xrun = xrun;
  process_block(*mixer_, times_, block_.data(), o_.period, t);
  sf_count_t written = 0;
  if (!s16_.empty()) {
    quantise_s16(block_.data(), s16_.data(), block_.size());
    written = sf_writef_short(file_, s16_.data(), o_.period);
  } else if (!s32_.empty()) {
    // libsndfile writes int as the top 24 bits: the 24-bit value shifted left by 8 is exact.
    for (std::size_t i = 0; i < block_.size(); ++i)
      s32_[i] = static_cast<std::int32_t>(
          static_cast<std::uint32_t>(quantise<std::int32_t>(block_[i], 8388608.0)) << 8);
    written = sf_writef_int(file_, s32_.data(), o_.period);
  } else {
    written = sf_writef_float(file_, block_.data(), o_.period);
  }
  if (written != o_.period) {
    failed_.store(true, std::memory_order_release);
    return false;
  }
  frames_.fetch_add(static_cast<std::uint64_t>(o_.period), std::memory_order_release);
  return true;
}

bool FileBackend::write_silence(std::uint64_t blocks) {
  // The device's own thread: the block buffer holds silence for this (no allocation per stall);
  // the next write_block overwrites it.
  std::fill(block_.begin(), block_.end(), 0.0f);
  for (std::uint64_t b = 0; b < blocks; ++b) {
    if (sf_writef_float(file_, block_.data(), o_.period) != o_.period) {
      failed_.store(true, std::memory_order_release);
      return false;
    }
    frames_.fetch_add(static_cast<std::uint64_t>(o_.period), std::memory_order_release);
  }
  return true;
}

void FileBackend::run_real_time() {
  const double block_ns = 1e9 * o_.period / o_.rate;
  std::uint64_t index = 0;
  bool xrun = false;
  while (!stop_.load(std::memory_order_acquire)) {
    const auto due =
        start_ns_ + static_cast<std::uint64_t>(std::llround(static_cast<double>(index) * block_ns));
    timespec ts{static_cast<time_t>(due / 1'000'000'000u), static_cast<long>(due % 1'000'000'000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
      if (stop_.load(std::memory_order_acquire)) return;
    }
    // Far behind the wall clock (the disk stalled): skip to it, as a device's position would.
    const auto now_block =
        static_cast<std::uint64_t>(static_cast<double>(monotonic_ns() - start_ns_) / block_ns);
    if (now_block > index + kMaxLateBlocks) {
      if (!write_silence(now_block - index)) return;
      index = now_block;
      xrun = true;
    }
    if (!write_block(index, xrun)) return;
    xrun = false;
    ++index;
  }
}

bool FileBackend::render(std::size_t blocks) {
  if (o_.pacing != Pacing::driven || mixer_ == nullptr || closed_) return false;
  for (std::size_t b = 0; b < blocks; ++b) {
    if (!write_block(blocks_, false)) return false;
    ++blocks_;
  }
  return true;
}

bool FileBackend::stream_active() const noexcept {
  return started_ && !closed_ && !failed_.load(std::memory_order_acquire);
}

double FileBackend::stream_time() const noexcept {
  if (o_.pacing == Pacing::driven) return static_cast<double>(blocks_) * o_.period / o_.rate;
  return started_ ? static_cast<double>(monotonic_ns() - start_ns_) * 1e-9 : 0.0;
}

bool FileBackend::shutdown(std::chrono::milliseconds, bool) noexcept {
  if (closed_) return true;
  closed_ = true;
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  if (file_ != nullptr) {
    sf_write_sync(file_);
    sf_close(file_);
    file_ = nullptr;
  }
  return true;
}

std::string FileBackend::describe() const {
  return "file " + o_.path + " (" + lower_extension(o_.path) + " " + o_.format + ", " +
         std::to_string(static_cast<int>(o_.rate)) + " Hz, " + std::to_string(o_.channels) +
         " ch, " + (o_.pacing == Pacing::real_time ? "real time" : "driven") + ")";
}

std::vector<float> ManualBackend::pull(frames_t frames, bool xrun) {
  if (frames <= 0) frames = period_;
  std::vector<float> out(static_cast<std::size_t>(frames) * static_cast<std::size_t>(channels_),
                         0.0f);
  BlockTiming t;
  t.current_time = time_s_;
  t.dac_time = time_s_;
  t.xrun = xrun;
  if (mixer_ != nullptr) process_block(*mixer_, times_, out.data(), frames, t);
  time_s_ += static_cast<double>(frames) / rate_;
  return out;
}

}  // namespace rtpnode
