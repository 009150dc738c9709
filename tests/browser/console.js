// console.js: console.log also appends its line to <pre id="console">, so
// the driver reads the lines, in call order, from Chromium's --dump-dom.
(function () {
  var log = console.log;
  var out = document.getElementById("console");
  console.log = function () {
    out.textContent += Array.prototype.join.call(arguments, " ") + "\n";
    log.apply(console, arguments);
  };
})();
