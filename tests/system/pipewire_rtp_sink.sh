#!/bin/bash
# PipeWire 0.3's module-rtp-sink as an independent RTP sender with SAP (issue #17), headless:
# a private pipewire daemon (no session manager) with a dummy driver as its clock, the sink's and
# pw-cat's ports configured by hand (PortConfig) and linked with pw-link, as
# ../shared/ENVIRONMENT.md describes. Streams FILE once, then stops the daemon (which sends the
# SAP deletion).
#   pipewire_rtp_sink.sh DIR FORMAT RATE CHANNELS RTP_PORT SAP_PORT FILE
# FORMAT: S16BE | S24BE | ULAW. RTP and SAP go to 127.0.0.1; 1 ms packets.
set -eu
dir=$1 format=$2 rate=$3 channels=$4 rtp_port=$5 sap_port=$6 file=$7
# The daemon's socket lives here: a short path (a test directory can exceed sun_path's 108 bytes).
XDG_RUNTIME_DIR=$(mktemp -d /tmp/pw.XXXXXX)
export XDG_RUNTIME_DIR
if [ "$channels" = 1 ]; then position="[ MONO ]"; else position="[ FL FR ]"; fi
cat > "$dir/pipewire.conf" <<CONF
context.properties = {
  core.daemon = true
  core.name = pipewire-0
  support.dbus = false
  default.clock.rate = 48000
  default.clock.quantum = 256
}
context.spa-libs = {
  audio.convert.* = audioconvert/libspa-audioconvert
  support.* = support/libspa-support
}
context.modules = [
  { name = libpipewire-module-protocol-native }
  { name = libpipewire-module-metadata }
  { name = libpipewire-module-spa-node-factory }
  { name = libpipewire-module-client-node }
  { name = libpipewire-module-access }
  { name = libpipewire-module-adapter }
  { name = libpipewire-module-link-factory }
  { name = libpipewire-module-rtp-sink
    args = {
      destination.ip = 127.0.0.1
      destination.port = $rtp_port
      sap.ip = 127.0.0.1
      sap.port = $sap_port
      audio.format = $format
      audio.rate = $rate
      audio.channels = $channels
      audio.position = $position
      sess.name = "PipeWire $format"
      sess.max-ptime = 1
      stream.props = { node.name = rtp-sink }
    }
  }
]
context.objects = [
  { factory = spa-node-factory
    args = { factory.name = support.node.driver node.name = Dummy-Driver priority.driver = 8000 } }
]
CONF
pipewire -c "$dir/pipewire.conf" > "$dir/pipewire.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$XDG_RUNTIME_DIR"' EXIT
node_id() {
  pw-cli ls Node 2>/dev/null | awk -v n="$1" '/^\tid [0-9]+/{id=$2} $0 ~ "node.name = \""n"\""{print id}' | tr -d ,
}
wait_node() {
  for _ in $(seq 200); do id=$(node_id "$1"); [ -n "$id" ] && { echo "$id"; return; }; sleep 0.05; done
  echo "no PipeWire node $1" >&2; exit 1
}
port_config() {  # NODE_ID DIRECTION
  pw-cli set-param "$1" PortConfig "{ direction: $2, mode: dsp, monitor: false, format: {
    mediaType: audio, mediaSubtype: raw, format: F32P, rate: 48000, channels: $channels,
    position: ${position/FL FR/FL, FR} } }" > /dev/null
}
port_config "$(wait_node rtp-sink)" Input
pw-cat -p --target rtp-sink "$file" > "$dir/pw-cat.log" 2>&1 &
player=$!
port_config "$(wait_node pw-cat)" Output
for _ in $(seq 100); do pw-link -o 2>/dev/null | grep -q '^pw-cat:' && break; sleep 0.05; done
if [ "$channels" = 1 ]; then
  pw-link pw-cat:output_MONO rtp-sink:input_MONO
else
  pw-link pw-cat:output_FL rtp-sink:input_FL
  pw-link pw-cat:output_FR rtp-sink:input_FR
fi
echo "streaming $file as $format/$rate/$channels to 127.0.0.1:$rtp_port, SAP to 127.0.0.1:$sap_port"
wait $player
