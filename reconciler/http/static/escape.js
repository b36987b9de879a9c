// App text made visible as text on the admin page, by the rule of the log lines and the
// terminal (reconciler/observability/logs.py, `escape_unsafe`): every control, bidi and
// invisible character written as an escape (`\n`, `\x1b`, `\u202e`, `\U000e0041`), so a job id
// holding U+202E cannot reorder what follows it. The character set is the server's, handed
// over in the page (`<body data-unsafe>`), so there is one definition of it.
"use strict";

(function (root) {
  const SHORT = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

  function hex(code, width) {
    return code.toString(16).padStart(width, "0");
  }

  function escapeChar(char) {
    if (Object.prototype.hasOwnProperty.call(SHORT, char)) return SHORT[char];
    const code = char.codePointAt(0);
    if (code < 0x100) return "\\x" + hex(code, 2);
    return code <= 0xffff ? "\\u" + hex(code, 4) : "\\U" + hex(code, 8);
  }

  // visibleText(pattern)(value): `value` as a string, every character `pattern` (a regular
  // expression's source, read with the `u` flag) matches written as an escape.
  root.visibleText = function (pattern) {
    const unsafe = new RegExp(pattern, "gu");
    return (value) => String(value).replace(unsafe, escapeChar);
  };
})(globalThis);
