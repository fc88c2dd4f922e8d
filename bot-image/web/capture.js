/*
 * In-page audio capture: every remote sound the Meeting SDK plays, mixed into one stream and
 * recorded in self-contained segments. Loaded before the SDK (loader.js), because the hooks
 * must be in place before the SDK creates its first AudioContext, peer connection or player.
 *
 * Why in the page (docs/capture.md): the SDK picks its audio path at run time, and a capture
 * that works on every path watches the three places remote audio can pass through:
 *   1. RTCPeerConnection remote tracks (the WebRTC path);
 *   2. AudioNode.connect(...) into an AudioDestinationNode (the WebAssembly path, played by an
 *      AudioContext);
 *   3. HTMLMediaElement.srcObject (the WebRTC path's <audio> pool, and the WebAssembly path
 *      when it hands a MediaStreamDestination to an <audio> element).
 * A remote WebRTC track carries no samples until a media element plays it, so a track seen on
 * a peer connection is also attached to a muted <audio> element of ours. Each track is mixed
 * once, whichever hooks see it. No PulseAudio, X server or ffmpeg: --headless and
 * --mute-audio do not affect any of this.
 *
 * Recording: Opus in WebM (MediaRecorder's native format in Chromium: no encoder in the image,
 * about 4 kB/s at 32 kbit/s), one recorder per segment so that every segment is a file any
 * player decodes on its own, and a crash loses at most the segment in progress.
 * Each finished segment goes to the bot through window.meetingbotEvent('capture-segment', ...),
 * stamped with Date.now() (the host's clock, the clock the bot stamps every event with).
 *
 * Live stream (spec.stream): the same mix, tapped as PCM (16-bit, mono, 16 kHz) in chunks of
 * about 100 ms, each handed to the bot as window.meetingbotEvent('capture-pcm', {t, data}), t the
 * capture time of its first sample. It runs only while recording does (the host's consent).
 */
(function () {
  'use strict';
  var MIME = 'audio/webm;codecs=opus';
  var MIN_SEGMENT_MS = 100;
  var mix = null;           // {context, destination}: created on first use
  var taps = new WeakMap(); // AudioContext -> its MediaStreamAudioDestinationNode tap
  var mixed = {};           // track id -> true, so a track is mixed once
  var sources = { peer: 0, context: 0, element: 0 };
  var recording = null;     // {segmentMs, bitrate, sequence, recorder, timer}
  // Until the bot starts recording, the hooks only take note: a bot that never records (no
  // spec.capture, or no consent yet) runs no mixer at all.
  var armed = false;
  var noted = [];           // [{track, kind}] seen before arming
  var spoken = [];          // AudioNodes connected to speakers before arming

  function mixer() {
    if (!mix) {
      var context = new AudioContext();
      mix = { context: context, destination: context.createMediaStreamDestination() };
      // Silence is recorded too: the destination runs whether or not anything is connected.
    }
    return mix;
  }

  function addTrack(track, kind) {
    if (!track || track.kind !== 'audio' || mixed[track.id] || track.readyState === 'ended') { return; }
    mixed[track.id] = true;
    sources[kind] += 1;
    track.addEventListener('ended', function () { delete mixed[track.id]; });
    if (armed) { mixIn(track, kind); } else { noted.push({ track: track, kind: kind }); }
  }

  function mixIn(track, kind) {
    var m = mixer();
    if (kind === 'peer') {
      // A remote track flows only while a media element plays it: play it, muted.
      var player = document.createElement('audio');
      player.muted = true;
      player.autoplay = true;
      player.srcObject = new MediaStream([track]);
      var played = player.play();
      if (played && played.catch) { played.catch(function () {}); }
      (window.meetingbotCapturePlayers = window.meetingbotCapturePlayers || []).push(player);
    }
    m.context.createMediaStreamSource(new MediaStream([track])).connect(m.destination);
  }

  function arm() {
    if (armed) { return; }
    armed = true;
    mixer();
    noted.splice(0).forEach(function (n) {
      if (n.track.readyState !== 'ended') { mixIn(n.track, n.kind); }
    });
    spoken.splice(0).forEach(function (node) {
      try { nativeConnect.call(node, tapOf(node.context)); } catch (e) { /* its context closed */ }
    });
  }

  function addStream(stream, kind) {
    if (stream && typeof stream.getAudioTracks === 'function') {
      stream.getAudioTracks().forEach(function (track) { addTrack(track, kind); });
    }
  }

  // 1. Remote tracks of every peer connection.
  var NativePeer = window.RTCPeerConnection;
  if (NativePeer) {
    var Peer = function (config, constraints) {
      var peer = new NativePeer(config, constraints);
      peer.addEventListener('track', function (event) { addTrack(event.track, 'peer'); });
      return peer;
    };
    Peer.prototype = NativePeer.prototype;
    Object.setPrototypeOf(Peer, NativePeer);
    window.RTCPeerConnection = Peer;
  }

  // 2. Anything connected to an AudioContext's speakers also feeds that context's tap.
  var nativeConnect = AudioNode.prototype.connect;
  AudioNode.prototype.connect = function (target) {
    var result = nativeConnect.apply(this, arguments);
    if (target instanceof AudioDestinationNode && !(mix && this.context === mix.context)) {
      if (armed) { nativeConnect.call(this, tapOf(this.context)); } else { spoken.push(this); }
    }
    return result;
  };
  function tapOf(context) {
    var tap = taps.get(context);
    if (!tap) {
      tap = context.createMediaStreamDestination();
      taps.set(context, tap);
      addStream(tap.stream, 'context');
    }
    return tap;
  }

  // 3. Streams handed to media elements.
  var srcObject = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, 'srcObject');
  Object.defineProperty(HTMLMediaElement.prototype, 'srcObject', {
    configurable: true,
    enumerable: srcObject.enumerable,
    get: function () { return srcObject.get.call(this); },
    set: function (value) {
      srcObject.set.call(this, value);
      if (value && value instanceof MediaStream) { addStream(value, 'element'); }
    }
  });

  function deliver(segment) {
    if (typeof window.meetingbotEvent === 'function') {
      window.meetingbotEvent('capture-segment', segment);
    }
  }

  function startSegment(state) {
    var recorder = new MediaRecorder(mixer().destination.stream, {
      mimeType: MIME, audioBitsPerSecond: state.bitrate
    });
    var chunks = [];
    var sequence = ++state.sequence;
    var startMs = Date.now();
    recorder.ondataavailable = function (event) { if (event.data && event.data.size) { chunks.push(event.data); } };
    recorder.onstop = function () {
      var endMs = Date.now();
      // Stopped before it held a frame (a rotation just before the stop): nothing to keep.
      if (!chunks.length || endMs - startMs < MIN_SEGMENT_MS) { return; }
      var reader = new FileReader();
      reader.onload = function () {
        var data = String(reader.result);
        deliver({
          sequence: sequence, startMs: startMs, endMs: endMs, mimeType: MIME,
          sources: { peer: sources.peer, context: sources.context, element: sources.element },
          data: data.slice(data.indexOf(',') + 1)
        });
      };
      reader.readAsDataURL(new Blob(chunks, { type: MIME }));
    };
    recorder.start();
    state.recorder = recorder;
  }

  function rotate(state) {
    if (recording !== state) { return; }
    var previous = state.recorder;
    startSegment(state);  // the next one first, so no sound falls between the two
    previous.stop();
    state.timer = setTimeout(function () { rotate(state); }, state.segmentMs);
  }

  var streaming = null;     // {node, sink, rate, pending: Int16Array[], samples, firstMs}

  function pcmChunk(state) {
    var total = 0;
    state.pending.forEach(function (part) { total += part.length; });
    var joined = new Int16Array(total);
    var at = 0;
    state.pending.forEach(function (part) { joined.set(part, at); at += part.length; });
    var bytes = new Uint8Array(joined.buffer);
    var text = '';
    for (var i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    if (typeof window.meetingbotEvent === 'function') {
      window.meetingbotEvent('capture-pcm', { t: state.firstMs, data: btoa(text) });
    }
    state.pending = [];
    state.samples = 0;
    state.firstMs = null;
  }

  // The mix as 16 kHz PCM: a ScriptProcessor on the mixer (an AudioWorklet would need a module
  // served to the page; at 16 kHz mono this costs little), resampled by linear interpolation.
  function startStream(options) {
    if (streaming || !recording) { return false; }
    var m = mixer();
    var rate = Number(options.sampleRate || 16000);
    var chunkSamples = Math.round(rate * Number(options.chunkMs || 100) / 1000);
    // 2048 frames: about 43 ms at 48 kHz, so a chunk leaves within ~130 ms of its first sample.
    var node = m.context.createScriptProcessor(2048, 1, 1);
    var source = m.context.createMediaStreamSource(m.destination.stream);
    var sink = m.context.createGain();
    sink.gain.value = 0;  // the processor runs only when connected to the speakers: silently
    var state = { node: node, source: source, sink: sink, pending: [], samples: 0, firstMs: null,
      carry: 0 };
    var step = m.context.sampleRate / rate;
    node.onaudioprocess = function (event) {
      var input = event.inputBuffer.getChannelData(0);
      var startMs = Date.now() - (input.length / m.context.sampleRate) * 1000;
      var out = [];
      for (var pos = state.carry; pos < input.length - 1; pos += step) {
        var i = Math.floor(pos), frac = pos - i;
        var value = input[i] * (1 - frac) + input[i + 1] * frac;
        out.push(Math.max(-32768, Math.min(32767, Math.round(value * 32767))));
      }
      state.carry = pos - input.length;
      if (state.firstMs === null) { state.firstMs = Math.round(startMs); }
      state.pending.push(Int16Array.from(out));
      state.samples += out.length;
      if (state.samples >= chunkSamples) { pcmChunk(state); }
    };
    source.connect(node);
    node.connect(sink);
    sink.connect(m.context.destination);
    streaming = state;
    return true;
  }

  function stopStream() {
    var state = streaming;
    if (!state) { return false; }
    streaming = null;
    state.node.onaudioprocess = null;
    state.source.disconnect();
    state.node.disconnect();
    if (state.samples) { pcmChunk(state); }
    return true;
  }

  window.meetingbotCapture = {
    supported: typeof MediaRecorder === 'function' && MediaRecorder.isTypeSupported(MIME),
    // Start recording; `sequence` continues a numbering (1 + the last segment delivered).
    start: function (options) {
      if (recording) { return false; }
      var state = {
        segmentMs: Math.max(1000, Number(options.segmentSeconds || 10) * 1000),
        bitrate: Number(options.bitrate || 32000),
        sequence: Math.max(0, Number(options.firstSequence || 1) - 1),
        recorder: null, timer: null
      };
      arm();
      if (mix.context.state !== 'running') { mix.context.resume(); }
      recording = state;
      startSegment(state);
      state.timer = setTimeout(function () { rotate(state); }, state.segmentMs);
      return true;
    },
    // The live PCM tap on the mix (only while recording).
    startStream: startStream,
    stopStream: stopStream,
    // Stop recording; the segment in progress is delivered.
    stop: function () {
      var state = recording;
      if (!state) { return false; }
      stopStream();
      recording = null;
      clearTimeout(state.timer);
      state.recorder.stop();
      return true;
    },
    // What the hooks found (a bot says so when nothing was ever mixed).
    sources: function () {
      return { peer: sources.peer, context: sources.context, element: sources.element,
        recording: Boolean(recording) };
    }
  };
})();
