// Spreadsheets as coop-docs' editor keeps them (workers/docs/web/app/sheet.js): the ChainPad
// document is JSON.sortify of {"metadata": {"type": "sheet", "title"}, "sheets": [{"name",
// "cells": {"A1": "12", "B2": "=SUM(A1:A9)"}}]}, what members typed cell by cell. Here: reading
// and writing that form, and CSV (RFC 4180) in and out for `coop docs new|push|pull`.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace coop::docs {

// The sheets array and the title, or nullopt when content is not a spreadsheet.
std::optional<std::pair<nlohmann::json, std::string>> parse_sheet(const std::string& content);
std::string sheet_content(const nlohmann::json& sheets, const std::string& title);

// One sheet from CSV (RFC 4180: quoted fields, doubled quotes, CRLF or LF); at most 100,000
// rows and 1,000 columns, as the editor imports them.
nlohmann::json csv_to_sheet(const std::string& csv, const std::string& name);
// A sheet as CSV: what was typed (formulas as formulas: only a browser works them out).
std::string sheet_to_csv(const nlohmann::json& sheet);
// Every sheet as a Markdown table under its name.
std::string sheets_to_markdown(const nlohmann::json& sheets);

}  // namespace coop::docs
