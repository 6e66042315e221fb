// Render the maths that pymdownx.arithmatex (generic mode) leaves as \( … \) and \[ … \] in
// span/div.arithmatex, with the bundled KaTeX; document$ is Material's page-load stream, so this also
// runs after instant navigation.
function renderMaths(root) {
  root.querySelectorAll(".arithmatex").forEach(function (element) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}
if (typeof document$ !== "undefined") {
  document$.subscribe(function (page) { renderMaths(page.body); });
} else {
  document.addEventListener("DOMContentLoaded", function () { renderMaths(document.body); });
}
