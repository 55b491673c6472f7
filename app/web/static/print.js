// Progressive enhancement only: with JavaScript on, the receipt page's Print button
// appears and opens the browser's print dialog. With it off, the button stays hidden and
// the page says to use the browser's Print command; the print stylesheet does the rest.
"use strict";
document.querySelectorAll("[data-print]").forEach(function (button) {
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
});
