/*
 * Loads the capture hooks (capture.js), the Meeting SDK, then bot.js. By default the real @zoom/meetingsdk from the local
 * node_modules (served by the bot under /sdk/), never from Zoom's CDN. For tests only, the
 * URL parameter ?sdk=<url> loads a single script in its place (the Zoom simulator's fake);
 * nothing else differs.
 */
(function () {
  'use strict';
  var REAL_SDK = [
    'sdk/lib/vendor/react.min.js',
    'sdk/lib/vendor/react-dom.min.js',
    'sdk/lib/vendor/redux.min.js',
    'sdk/lib/vendor/redux-thunk.min.js',
    'sdk/lib/vendor/lodash.min.js',
    'sdk/zoom-meeting-embedded-ES5.min.js'
  ];
  var override = new URLSearchParams(window.location.search).get('sdk');
  // capture.js first: its hooks must be in place before the SDK creates any audio.
  var scripts = ['capture.js'].concat(override ? [override] : REAL_SDK, ['bot.js']);
  window.meetingbotLoad = { sdk: override ? 'override' : 'local', error: null };

  function next(i) {
    if (i >= scripts.length) { return; }
    var tag = document.createElement('script');
    tag.src = scripts[i];
    tag.onload = function () { next(i + 1); };
    tag.onerror = function () { window.meetingbotLoad.error = 'failed to load ' + scripts[i]; };
    document.head.appendChild(tag);
  }
  document.addEventListener('DOMContentLoaded', function () { next(0); });
})();
