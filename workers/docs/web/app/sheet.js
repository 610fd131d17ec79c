// coop-docs' spreadsheets, on the same relay and encryption as the rich-text documents. The
// document is JSON.sortify of {"metadata": {"type": "sheet", "title"}, "sheets": [{"name",
// "cells": {"A1": "12", "B1": "=SUM(A1:A9)"}}]}: what members typed, cell by cell, so that
// ChainPad's SmartJSONTransformer merges two members' edits of different cells.
//
// Formulas are worked out by HyperFormula (npm, GPL-3.0), which parses them: a formula is
// data, never code. (The grids on npm that bring their own formulas turn them into JavaScript
// and run it, which would let anyone with the edit link run code in every other member's page.)
// The grid is this file's own small table. CSV by Papa Parse; XLSX by ExcelJS, loaded when asked.
(function () {
  "use strict";
  window.__coopSheet = function (options) {
    var require = window.__coopRequire;
    var HyperFormula = require("hyperformula").HyperFormula;
    var Papa = require("papaparse");
    var Sortify = require("json.sortify");
    var container = options.container, editable = options.canEdit;
    var model = { sheets: [{ name: "Sheet1", cells: {} }] };
    var hf = null, active = 0, selected = { x: 0, y: 0 }, editing = null, deferred = false;
    var MAX_ROWS_SHOWN = 2000;

    // --- Cell references ---

    function columnName(i) {
      var name = "";
      for (i += 1; i > 0; i = Math.floor((i - 1) / 26)) { name = String.fromCharCode(65 + (i - 1) % 26) + name; }
      return name;
    }
    function parseRef(ref) {
      var m = /^([A-Z]{1,3})([1-9][0-9]{0,5})$/.exec(ref);
      if (!m) { return null; }
      var x = 0;
      for (var i = 0; i < m[1].length; i++) { x = x * 26 + (m[1].charCodeAt(i) - 64); }
      return { x: x - 1, y: +m[2] - 1 };
    }
    function refOf(x, y) { return columnName(x) + (y + 1); }

    // A model from anything a document may hold: unknown or hostile parts are left out.
    function normalize(value) {
      var out = { sheets: [] }, names = {};
      var sheets = value && Array.isArray(value.sheets) ? value.sheets : [];
      sheets.slice(0, 50).forEach(function (s, i) {
        var cells = {};
        if (s && typeof s.cells === "object" && s.cells && !Array.isArray(s.cells)) {
          Object.keys(s.cells).forEach(function (ref) {
            var v = s.cells[ref];
            if (parseRef(ref) && (typeof v === "string" || typeof v === "number") && String(v) !== "") {
              cells[ref] = String(v).slice(0, 32768);
            }
          });
        }
        var name = s && typeof s.name === "string" && s.name.trim() ? s.name.trim().slice(0, 60) : "Sheet" + (i + 1);
        while (names[name.toLowerCase()]) { name += " " + (i + 1); }
        names[name.toLowerCase()] = true;
        out.sheets.push({ name: name, cells: cells });
      });
      if (!out.sheets.length) { out.sheets.push({ name: "Sheet1", cells: {} }); }
      return out;
    }

    // --- Formulas: HyperFormula holds every sheet ---

    function rowsOf(cells) {
      var rows = [];
      Object.keys(cells).forEach(function (ref) {
        var p = parseRef(ref);
        while (rows.length <= p.y) { rows.push([]); }
        var row = rows[p.y];
        while (row.length <= p.x) { row.push(null); }
        row[p.x] = cells[ref];
      });
      return rows;
    }
    function compute() {
      var sheets = {};
      model.sheets.forEach(function (s) { sheets[s.name] = rowsOf(s.cells); });
      if (hf) { hf.destroy(); }
      hf = HyperFormula.buildFromSheets(sheets, { licenseKey: "gpl-v3", maxRows: 100000, maxColumns: 1000 });
    }
    function sheetId(index) { return hf.getSheetId(model.sheets[index].name); }
    function value(index, x, y) {
      var v = hf.getCellValue({ sheet: sheetId(index), row: y, col: x });
      if (v === null || v === undefined) { return ""; }
      if (typeof v === "object") { return v.value || "#ERROR!"; }  // a DetailedCellError
      if (typeof v === "number") { return String(Math.round(v * 1e10) / 1e10); }
      if (typeof v === "boolean") { return v ? "TRUE" : "FALSE"; }
      return String(v);
    }

    // --- The grid ---

    function size(index) {
      var columns = 10, rows = 30;
      Object.keys(model.sheets[index].cells).forEach(function (ref) {
        var p = parseRef(ref);
        columns = Math.max(columns, p.x + 3);
        rows = Math.max(rows, p.y + 6);
      });
      return { columns: Math.min(columns, 1000), rows: Math.min(rows, 100000) };
    }
    function render() {
      deferred = false;
      active = Math.min(active, model.sheets.length - 1);
      container.replaceChildren();
      // Tabs: one per sheet, a double-click renames, and a button adds one.
      var tabs = document.createElement("div");
      tabs.className = "coop-tabs";
      model.sheets.forEach(function (s, i) {
        var tab = document.createElement("button");
        tab.type = "button";
        tab.className = "coop-tab";
        tab.textContent = s.name;
        tab.setAttribute("aria-pressed", i === active ? "true" : "false");
        tab.addEventListener("click", function () { active = i; selected = { x: 0, y: 0 }; render(); });
        if (editable) { tab.addEventListener("dblclick", function () { renameTab(tab, i); }); }
        tabs.appendChild(tab);
      });
      if (editable) {
        var add = document.createElement("button");
        add.type = "button";
        add.className = "coop-tab-add";
        add.title = "Add a sheet";
        add.textContent = "+";
        add.addEventListener("click", function () { addSheet("Sheet" + (model.sheets.length + 1), {}); });
        tabs.appendChild(add);
        if (model.sheets.length > 1) {
          var remove = document.createElement("button");
          remove.type = "button";
          remove.className = "coop-tab-remove";
          remove.textContent = "Delete sheet";
          remove.addEventListener("click", function () {
            (options.ask ? options.ask("Delete the sheet \u201c" + model.sheets[active].name + "\u201d?") : Promise.resolve(true))
              .then(function (yes) {
                if (!yes) { return; }
                model = { sheets: model.sheets.filter(function (_, i) { return i !== active; }) };
                active = Math.max(0, active - 1);
                compute();
                render();
                options.onLocalChange();
              });
          });
          tabs.appendChild(remove);
        }
      }
      container.appendChild(tabs);
      // The formula bar: what the selected cell holds, editable there too.
      var bar = document.createElement("div");
      bar.className = "coop-formula-bar";
      var where = document.createElement("span");
      where.className = "coop-where";
      where.textContent = refOf(selected.x, selected.y);
      var input = document.createElement("input");
      input.className = "coop-formula";
      input.setAttribute("aria-label", "Cell contents");
      input.value = model.sheets[active].cells[refOf(selected.x, selected.y)] || "";
      input.disabled = !editable;
      input.addEventListener("blur", function () { if (deferred) { deferred = false; setTimeout(render, 0); } });
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { setCell(selected.x, selected.y, input.value); event.preventDefault(); }
      });
      bar.appendChild(where);
      bar.appendChild(input);
      if (editable) {
        [["Sort A\u2192Z", false], ["Sort Z\u2192A", true]].forEach(function (pair) {
          var sort = document.createElement("button");
          sort.type = "button";
          sort.className = pair[1] ? "coop-sort-desc" : "coop-sort-asc";
          sort.textContent = pair[0];
          sort.title = "Sort the rows below the first by the selected column";
          sort.addEventListener("click", function () { sortBy(selected.x, pair[1]); });
          bar.appendChild(sort);
        });
      }
      container.appendChild(bar);

      var dims = size(active), table = document.createElement("table");
      table.className = "coop-grid";
      table.tabIndex = 0;
      var head = document.createElement("tr");
      head.appendChild(document.createElement("th"));
      for (var x = 0; x < dims.columns; x++) {
        var th = document.createElement("th");
        th.textContent = columnName(x);
        head.appendChild(th);
      }
      var thead = document.createElement("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      var body = document.createElement("tbody");
      for (var y = 0; y < Math.min(dims.rows, MAX_ROWS_SHOWN); y++) {
        var tr = document.createElement("tr");
        var number = document.createElement("th");
        number.textContent = String(y + 1);
        tr.appendChild(number);
        for (x = 0; x < dims.columns; x++) {
          var td = document.createElement("td");
          td.setAttribute("data-ref", refOf(x, y));
          td.setAttribute("data-x", x);
          td.setAttribute("data-y", y);
          var shown = value(active, x, y);
          td.textContent = shown;
          if (shown !== "" && !isNaN(Number(shown))) { td.className = "number"; }
          if (x === selected.x && y === selected.y) { td.classList.add("selected"); }
          tr.appendChild(td);
        }
        body.appendChild(tr);
      }
      table.appendChild(body);
      table.addEventListener("mousedown", function (event) {
        var td = event.target.closest("td");
        if (!td || editing) { return; }
        select(+td.getAttribute("data-x"), +td.getAttribute("data-y"));
      });
      table.addEventListener("dblclick", function (event) {
        var td = event.target.closest("td");
        if (td) { startEditing(td, null); }
      });
      table.addEventListener("keydown", onKey);
      container.appendChild(table);
      if (dims.rows > MAX_ROWS_SHOWN) {
        var note = document.createElement("p");
        note.className = "hint";
        note.textContent = "The first " + MAX_ROWS_SHOWN + " of " + dims.rows + " rows are shown; all of them are kept and exported.";
        container.appendChild(note);
      }
    }
    function cellElement(x, y) { return container.querySelector('td[data-x="' + x + '"][data-y="' + y + '"]'); }
    function select(x, y) {
      var dims = size(active);
      x = Math.max(0, Math.min(x, dims.columns - 1));
      y = Math.max(0, Math.min(y, Math.min(dims.rows, MAX_ROWS_SHOWN) - 1));
      var old = cellElement(selected.x, selected.y);
      if (old) { old.classList.remove("selected"); }
      selected = { x: x, y: y };
      var td = cellElement(x, y);
      if (td) { td.classList.add("selected"); td.scrollIntoView({ block: "nearest", inline: "nearest" }); }
      container.querySelector(".coop-where").textContent = refOf(x, y);
      container.querySelector(".coop-formula").value = model.sheets[active].cells[refOf(x, y)] || "";
      if (options.onSelect) { options.onSelect({ sheet: active, cell: refOf(x, y) }); }
    }
    function onKey(event) {
      if (editing) { return; }
      var moves = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0], Enter: [0, 1], Tab: [1, 0] };
      if (moves[event.key]) {
        select(selected.x + moves[event.key][0], selected.y + moves[event.key][1]);
        event.preventDefault();
      } else if ((event.key === "Delete" || event.key === "Backspace") && editable) {
        setCell(selected.x, selected.y, "");
        event.preventDefault();
      } else if (event.key === "F2") {
        startEditing(cellElement(selected.x, selected.y), null);
        event.preventDefault();
      } else if (event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey) {
        startEditing(cellElement(selected.x, selected.y), event.key);
        event.preventDefault();
      }
    }
    function startEditing(td, first) {
      if (!editable || !td) { return; }
      var x = +td.getAttribute("data-x"), y = +td.getAttribute("data-y");
      select(x, y);
      var input = document.createElement("input");
      input.className = "coop-cell-editor";
      input.value = first !== null ? first : (model.sheets[active].cells[refOf(x, y)] || "");
      td.replaceChildren(input);
      editing = { x: x, y: y, input: input };
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
      var finish = function (save, dx, dy) {
        if (!editing || editing.input !== input) { return; }
        editing = null;
        if (save) { setCell(x, y, input.value); } else if (deferred) { render(); } else { td.textContent = value(active, x, y); }
        select(x + dx, y + dy);
        container.querySelector(".coop-grid").focus();
      };
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { finish(true, 0, 1); event.preventDefault(); }
        else if (event.key === "Tab") { finish(true, 1, 0); event.preventDefault(); }
        else if (event.key === "Escape") { finish(false, 0, 0); event.preventDefault(); }
        event.stopPropagation();
      });
      input.addEventListener("blur", function () { finish(true, 0, 0); });
    }
    function setCell(x, y, text) {
      var cells = model.sheets[active].cells, ref = refOf(x, y);
      text = String(text).slice(0, 32768);
      if ((cells[ref] || "") === text) { render(); return; }
      if (text === "") { delete cells[ref]; } else { cells[ref] = text; }
      try {
        hf.setCellContents({ sheet: sheetId(active), row: y, col: x }, [[text === "" ? null : text]]);
      } catch (e) { compute(); }
      render();
      options.onLocalChange();
    }
    function renameTab(tab, index) {
      var input = document.createElement("input");
      input.value = model.sheets[index].name;
      input.setAttribute("aria-label", "Sheet name");
      tab.replaceChildren(input);
      input.focus();
      var done = false;
      var finish = function (save) {
        if (done) { return; }
        done = true;
        var name = input.value.trim().slice(0, 60);
        var taken = model.sheets.some(function (s, i) { return i !== index && s.name.toLowerCase() === name.toLowerCase(); });
        if (save && name && !taken && name !== model.sheets[index].name) {
          hf.renameSheet(sheetId(index), name);
          model.sheets[index].name = name;
          options.onLocalChange();
        }
        render();
      };
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { finish(true); }
        if (event.key === "Escape") { finish(false); }
        event.stopPropagation();
      });
      input.addEventListener("blur", function () { finish(true); });
    }
    // Rows below the first (a header row, as lists usually have) by one column: numbers before
    // text; formulas move with their rows and their references follow (HyperFormula's row order).
    function sortBy(column, descending) {
      var id = sheetId(active), dims = hf.getSheetDimensions(id);
      if (dims.height < 3) { return; }
      var rows = [];
      for (var y = 1; y < dims.height; y++) {
        var v = hf.getCellValue({ sheet: id, row: y, col: column });
        rows.push({ y: y, v: v && typeof v === "object" ? null : v });
      }
      var rank = function (v) { return v === null || v === "" ? 2 : typeof v === "number" ? 0 : 1; };
      rows.sort(function (a, b) {
        var ra = rank(a.v), rb = rank(b.v);
        if (ra !== rb) { return ra - rb; }  // blanks last either way
        var c = ra === 0 ? a.v - b.v : String(a.v).localeCompare(String(b.v));
        return (descending ? -c : c) || a.y - b.y;
      });
      var order = new Array(dims.height);
      order[0] = 0;
      rows.forEach(function (r, i) { order[r.y] = i + 1; });
      hf.setRowOrder(id, order);
      var serialized = hf.getSheetSerialized(id), cells = {};
      serialized.forEach(function (row, yy) {
        row.forEach(function (raw, xx) {
          if (raw !== null && raw !== undefined && String(raw) !== "") { cells[refOf(xx, yy)] = String(raw); }
        });
      });
      model.sheets[active].cells = cells;
      render();
      options.onLocalChange();
    }
    function addSheet(name, cells) {
      var base = (name || "Sheet").slice(0, 50), unique = base;
      var taken = function (n) { return model.sheets.some(function (s) { return s.name.toLowerCase() === n.toLowerCase(); }); };
      for (var n = 2; taken(unique); n++) { unique = base + " " + n; }
      model = { sheets: model.sheets.concat([{ name: unique, cells: cells }]) };
      active = model.sheets.length - 1;
      compute();
      render();
      options.onLocalChange();
    }

    // --- The document ---

    function load(content) {
      var parsed = null;
      try { parsed = content ? JSON.parse(content) : {}; } catch (e) { parsed = null; }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) { throw new Error("not a spreadsheet"); }
      var next = normalize(parsed);
      var sameSheets = next.sheets.length === model.sheets.length &&
        next.sheets.every(function (s, i) { return s.name === model.sheets[i].name; });
      if (sameSheets && hf) {
        // Only the cells that differ change: HyperFormula works out what depends on them.
        next.sheets.forEach(function (s, i) {
          var old = model.sheets[i].cells, id = sheetId(i);
          Object.keys(old).concat(Object.keys(s.cells)).forEach(function (ref) {
            if ((old[ref] || "") === (s.cells[ref] || "")) { return; }
            var p = parseRef(ref);
            hf.setCellContents({ sheet: id, row: p.y, col: p.x }, [[s.cells[ref] || null]]);
            old[ref] = s.cells[ref] || "";
          });
        });
        model = next;
      } else {
        model = next;
        compute();
      }
      // A member typing in a cell or the formula bar keeps typing: the grid is drawn again
      // once they are done.
      var bar = container.querySelector(".coop-formula");
      if (editing || (bar && document.activeElement === bar)) { deferred = true; } else { render(); }
    }
    function content(title) {
      var metadata = { defaultTitle: "Spreadsheet", type: "sheet" };
      if (title) { metadata.title = title; }
      return Sortify({ metadata: metadata, sheets: model.sheets });
    }
    // The values shown (formulas worked out), as rows.
    function shownRows(index) {
      var id = sheetId(index), dims = hf.getSheetDimensions(id), rows = [];
      for (var y = 0; y < dims.height; y++) {
        var row = [];
        for (var x = 0; x < dims.width; x++) { row.push(value(index, x, y)); }
        rows.push(row);
      }
      return rows;
    }
    function toCsv(index) { return Papa.unparse(shownRows(index === undefined ? active : index)); }
    function importCsv(text, name) {
      var parsed = Papa.parse(text, { skipEmptyLines: false });
      var cells = {};
      parsed.data.slice(0, 100000).forEach(function (row, y) {
        row.slice(0, 1000).forEach(function (v, x) { if (v !== "") { cells[refOf(x, y)] = String(v); } });
      });
      addSheet(name, cells);
    }
    function loadExcel() {
      if (window.__coopExcel) { return window.__coopExcel; }
      window.__coopExcel = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = "/docs/xlsx.js";
        script.onload = function () { resolve(require("exceljs")); };
        script.onerror = reject;
        document.head.appendChild(script);
      });
      return window.__coopExcel;
    }
    function toXlsx() {
      return loadExcel().then(function (ExcelJS) {
        var book = new ExcelJS.Workbook();
        model.sheets.forEach(function (s, i) {
          var sheet = book.addWorksheet(s.name.replace(/[\\\/?*\[\]:]/g, "_").slice(0, 31) || "Sheet" + (i + 1));
          Object.keys(s.cells).forEach(function (ref) {
            var raw = s.cells[ref], p = parseRef(ref), shown = value(i, p.x, p.y);
            if (raw.charAt(0) === "=") {
              sheet.getCell(ref).value = { formula: raw.slice(1), result: shown !== "" && !isNaN(Number(shown)) ? Number(shown) : shown };
            } else if (raw.trim() !== "" && !isNaN(Number(raw))) {
              sheet.getCell(ref).value = Number(raw);
            } else {
              sheet.getCell(ref).value = raw;
            }
          });
        });
        return book.xlsx.writeBuffer();
      });
    }
    function importXlsx(buffer) {
      return loadExcel().then(function (ExcelJS) {
        var book = new ExcelJS.Workbook();
        return book.xlsx.load(buffer).then(function () {
          var imported = [];
          book.eachSheet(function (sheet) {
            var cells = {};
            sheet.eachRow({ includeEmpty: false }, function (row, y) {
              if (y > 100000) { return; }
              row.eachCell({ includeEmpty: false }, function (cell, x) {
                if (x > 1000) { return; }
                var v = cell.value, text;
                if (cell.formula) { text = "=" + cell.formula; }
                else if (v && typeof v === "object" && v.richText) { text = v.richText.map(function (t) { return t.text; }).join(""); }
                else if (v instanceof Date) { text = v.toISOString().slice(0, 10); }
                else if (v && typeof v === "object" && "result" in v) { text = String(v.result); }
                else if (v && typeof v === "object" && "text" in v) { text = String(v.text); }
                else { text = v === null || v === undefined ? "" : String(v); }
                if (text !== "") { cells[refOf(x - 1, y - 1)] = text; }
              });
            });
            imported.push({ name: sheet.name, cells: cells });
          });
          imported.forEach(function (s) { addSheet(s.name, s.cells); });
        });
      });
    }

    compute();
    render();
    return {
      load: load,
      content: content,
      toCsv: toCsv,
      importCsv: importCsv,
      toXlsx: toXlsx,
      importXlsx: importXlsx,
      model: function () { return model; },
      shown: function (index, ref) { var p = parseRef(ref); return p ? value(index, p.x, p.y) : ""; },
      setEditable: function (yes) { editable = yes; render(); }
    };
  };
})();
