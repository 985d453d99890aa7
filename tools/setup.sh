#!/usr/bin/env bash
# Installs everything rtpnode needs to build, run and test on Debian 12, non-interactively.
# Safe to re-run: when every package is already installed it does nothing.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  portaudio19-dev libasound2-dev libjack-jackd2-dev libuv1-dev libopus-dev libortp-dev
  libspeexdsp-dev libspandsp-dev libsndfile1-dev libcli11-dev nlohmann-json3-dev
  libbcg729-dev libopencore-amrnb-dev      # G.729 with Annex B, AMR-NB (VoIP tap, issue #14)
  libtomlplusplus-dev                      # --config FILE (TOML)
  libsystemd-dev systemd help2man          # sd_notify; systemd-analyze verify; man pages
  libgtest-dev libgmock-dev libbenchmark-dev
  jackd2 jack-capture
  libasound2-plugins                       # ALSA's jack PCM: the ALSA path tested on JACK dummy
  alsa-utils asterisk-core-sounds-en-wav   # real recordings for the demo and the tests
  ffmpeg                                   # independent G.722 decoder for a reference test
  iproute2                                 # network namespaces for the multicast test
  libmicrohttpd-dev                        # HTTP for /metrics, /stats and control
  libpcap-dev tcpdump                      # --pcap capture files (VoIP tap); test captures
  libavahi-client-dev                      # mDNS/DNS-SD advertisement of --http (issue #19)
  avahi-daemon avahi-utils dbus-daemon     # a private avahi-daemon and avahi-browse in the tests
  zlib1g-dev                               # compressed SAP announcements (RFC 2974 C bit)
  tshark                                   # independent RTP stream figures for --pcap tests
  sip-tester                               # SIPp: real SIP calls for the VoIP tap tests
  pipewire pipewire-bin                    # PipeWire module-rtp-sink: an independent RTP/SAP sender
  trx                                      # trx-tx: an independent Opus sender that bends RFC 7587
  curl python3-jsonschema python3-prometheus-client  # independent checks of the HTTP endpoint
  clang libclang-rt-14-dev                 # libFuzzer targets (tools/fuzz.sh)
  clang-format                             # the committed .clang-format, checked by tools/test.sh
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good  # fuzz seeds from GStreamer
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

# As root apt-get runs directly; otherwise through sudo, keeping DEBIAN_FRONTEND (sudo drops the
# environment). An array, so that an empty prefix expands to no word at all.
as_root=()
if [ "$(id -u)" -ne 0 ]; then as_root=(sudo -E); fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
