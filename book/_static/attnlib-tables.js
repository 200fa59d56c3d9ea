// A table of many columns on a narrow screen: each row becomes a block and each cell a line led by its
// column's name (the CSS in attnlib.css, under .attnlib-stack, does the layout below 720 px; on a wide
// screen the table is unchanged). Tables whose cells span rows or columns are left as they are.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const STACK_FROM_COLUMNS = 6;
  for (const table of document.querySelectorAll(".bd-article table")) {
    const headRows = table.querySelectorAll("thead tr");
    const bodyRows = table.querySelectorAll("tbody tr");
    if (!headRows.length || !bodyRows.length || table.querySelector("[rowspan], [colspan]")) continue;
    const names = [...headRows[headRows.length - 1].children].map((cell) => cell.textContent.trim());
    if (names.length < STACK_FROM_COLUMNS) continue;
    if ([...bodyRows].some((row) => row.children.length !== names.length)) continue;
    for (const row of bodyRows) {
      [...row.children].forEach((cell, i) => {
        if (names[i]) cell.dataset.label = names[i];
      });
    }
    table.classList.add("attnlib-stack");
  }
});
