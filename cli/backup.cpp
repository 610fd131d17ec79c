// coop backup, coop backup verify, coop restore: a running shard copied to a folder of plain
// files (restic and borg deduplicate them well) and back.
//
// What is copied: every SQLite database through SQLite's online backup API (each in one read
// transaction, so each is a consistent snapshot taken after the backup began), then the
// content-addressed blobs that the folder does not have yet, then every other file that
// changed (keys/, coop.toml, docs channel logs and uploads, map archives that are not SQLite).
// Databases go first: whatever they point at was on disk before they were snapshotted, so a
// message acknowledged before the backup began is in it with its index and its blob.
// run/ and log/ are not copied, nor SQLite's -wal and -shm files. manifest.json, written
// last, lists every file with its size and SHA-256.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "cli/cli.h"
#include "cli/output.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/error_codes.h"
#include "common/fs.h"
#include "common/paths.h"
#include "common/version.h"

namespace coop::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char kManifest[] = "manifest.json";
constexpr int kManifestVersion = 1;

struct FileEntry {
  std::string kind;  // "database", "blob", "file"
  uint64_t size = 0;
  std::string sha256;
  int64_t mtime = 0;  // of the source, for files copied only when they change
};

struct Md {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// SHA-256 of a file, streamed; optionally copied to `copy_to` on the way.
std::string hash_file(const fs::path& file, const fs::path& copy_to = {}) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(errc::kIoError, "cannot read " + file.string(), 500);
  std::ofstream out;
  if (!copy_to.empty()) {
    out.open(copy_to, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(errc::kIoError, "cannot write " + copy_to.string(), 500);
  }
  std::unique_ptr<EVP_MD_CTX, Md> ctx(EVP_MD_CTX_new());
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::string buffer(1 << 16, '\0');
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = in.gcount();
    if (n <= 0) break;
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<std::size_t>(n));
    if (out.is_open()) out.write(buffer.data(), n);
  }
  if (out.is_open()) {
    out.flush();
    if (!out) throw Error(errc::kIoError, "cannot write " + copy_to.string() + " (disk full?)", 500);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  return to_hex(digest, length);
}

// Everything written under dir made durable in one call (Linux syncfs: the filesystem that
// holds it): one flush at the end instead of an fsync per blob, which made a first backup of
// 10,000 messages wait on 10,000 fsyncs.
void sync_filesystem(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) throw Error(errc::kIoError, "cannot open " + dir.string(), 500);
  const int rc = ::syncfs(fd);
  ::close(fd);
  if (rc != 0) throw Error(errc::kIoError, "cannot flush " + dir.string() + " to disk", 500);
}

bool is_sqlite(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char head[16] = {};
  in.read(head, sizeof head);
  return in.gcount() == 16 && std::string(head, 16) == std::string("SQLite format 3\0", 16);
}

// One consistent snapshot of a live database, by SQLite's online backup API.
void snapshot_database(const fs::path& source, const fs::path& target) {
  sqlite3* from = nullptr;
  sqlite3* to = nullptr;
  auto close_both = [&] {
    sqlite3_close_v2(from);
    sqlite3_close_v2(to);
  };
  if (sqlite3_open_v2(source.c_str(), &from, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK ||
      sqlite3_open_v2(target.c_str(), &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    const std::string why = sqlite3_errmsg(from ? from : to);
    close_both();
    throw Error(errc::kDatabaseError, "cannot open " + source.string() + " for backup: " + why, 500);
  }
  sqlite3_busy_timeout(from, 10000);
  sqlite3_backup* backup = sqlite3_backup_init(to, "main", from, "main");
  int rc = backup ? sqlite3_backup_step(backup, -1) : SQLITE_ERROR;
  if (backup) sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    const std::string why = sqlite3_errmsg(to);
    close_both();
    throw Error(errc::kDatabaseError, "backup of " + source.string() + " failed: " + why, 500);
  }
  // The copy keeps the source's WAL flag; fold everything into the one file.
  sqlite3_exec(to, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr);
  close_both();
}

nlohmann::json read_manifest(const fs::path& dir) {
  std::ifstream in(dir / kManifest);
  if (!in) return nullptr;
  auto manifest = nlohmann::json::parse(in, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object() || manifest.value("version", 0) != kManifestVersion)
    throw Error(errc::kBadRequest, (dir / kManifest).string() + " is not a coop backup manifest", 400);
  return manifest;
}

std::map<std::string, FileEntry> entries_of(const nlohmann::json& manifest) {
  std::map<std::string, FileEntry> out;
  if (manifest.is_null()) return out;
  const auto files = manifest.value("files", nlohmann::json::object());
  for (const auto& [path, f] : files.items())
    out[path] = {f.value("kind", "file"), f.value("size", uint64_t{0}), f.value("sha256", ""), f.value("mtime", int64_t{0})};
  return out;
}

int64_t mtime_of(const fs::path& file) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(fs::last_write_time(file).time_since_epoch()).count();
}

// A relative path a manifest may name: no absolute paths, no "..", nothing odd.
bool safe_relative(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.find('\0') != std::string::npos) return false;
  for (const auto& part : fs::path(path))
    if (part == ".." || part == ".") return false;
  return true;
}

struct BackupOptions {
  std::string out;
  bool json = false;
};

void run_backup(Globals& globals, const BackupOptions& options) {
  const Home home = globals.resolve_home();
  const auto config = Config::load(home.config_file());  // a shard, and a config that loads
  const fs::path out = fs::absolute(options.out);
  if (fs::exists(out) && !fs::is_directory(out)) throw Error(errc::kBadRequest, out.string() + " is not a directory", 400);
  fs::create_directories(out);
  const auto previous = entries_of(read_manifest(out));
  const auto started = Clock::now();
  const auto started_at = std::chrono::system_clock::now();

  // Every file to take, by kind: databases first (see the top of this file).
  std::vector<fs::path> databases, blobs, files;
  const auto root = home.root();
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const auto rel = fs::relative(it->path(), root);
    const auto first = rel.begin()->string();
    if (it->is_directory()) {
      if (first == "run" || first == "log" || it->path().filename() == "tmp") it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file()) continue;
    const auto name = it->path().filename().string();
    if (name.ends_with("-wal") || name.ends_with("-shm") || name.ends_with("-journal")) continue;
    if (rel == "last_backup.json") continue;  // about backups, rewritten by each: not the shard's data
    if (first == "blobs") continue;  // listed after the databases are taken (below)
    if (is_sqlite(it->path()))
      databases.push_back(rel);
    else
      files.push_back(rel);
  }

  std::map<std::string, FileEntry> taken;
  ProgressLine progress(options.json);
  uint64_t new_bytes = 0;
  std::size_t new_blobs = 0, copied_files = 0;
  std::set<fs::path> made_dirs;
  auto ensure_parent = [&](const fs::path& target) {
    const auto parent = target.parent_path();
    if (made_dirs.insert(parent).second) fs::create_directories(parent);
  };
  for (std::size_t i = 0; i < databases.size(); ++i) {
    const auto& rel = databases[i];
    progress.show("databases " + std::to_string(i + 1) + "/" + std::to_string(databases.size()) + ": " + rel.string());
    const auto target = out / rel;
    ensure_parent(target);
    const auto tmp = fs::path(target.string() + ".coop-backup-tmp");
    fs::remove(tmp);
    snapshot_database(root / rel, tmp);
    fs::rename(tmp, target);
    FileEntry e{"database", fs::file_size(target), hash_file(target), 0};
    new_bytes += e.size;
    taken[rel.string()] = e;
  }
  // Blobs are listed now, after the snapshots: a message or upload acknowledged while the
  // databases were taken has its blob here too, so every blob a snapshot refers to is listed.
  if (fs::exists(root / "blobs"))
    for (auto it = fs::recursive_directory_iterator(root / "blobs"); it != fs::recursive_directory_iterator(); ++it) {
      if (it->is_directory() && it->path().filename() == "tmp") it.disable_recursion_pending();
      if (it->is_regular_file()) blobs.push_back(fs::relative(it->path(), root));
    }
  // A blob the folder holds is kept (content-addressed: same name, same bytes), and so is
  // another file whose size and mtime did not change; anything else is copied in. A source
  // removed since it was listed is skipped: only coop-site deletes blobs (versions past
  // keep_versions), and a version it pruned after its database was snapshotted is listed
  // without its files. True when the file was copied.
  auto take = [&](const fs::path& rel, const std::string& kind) {
    const auto source = root / rel;
    const auto target = out / rel;
    std::error_code ec;
    const auto size = fs::file_size(source, ec);
    if (ec) return false;
    const int64_t mtime = kind == "file" ? mtime_of(source) : 0;
    const auto old = previous.find(rel.string());
    if (old != previous.end() && old->second.size == size && old->second.mtime == mtime && fs::exists(target) &&
        fs::file_size(target) == size) {
      taken[rel.string()] = old->second;
      return false;
    }
    ensure_parent(target);
    const auto tmp = fs::path(target.string() + ".coop-backup-tmp");
    FileEntry e{kind, 0, hash_file(source, tmp), mtime};
    e.size = fs::file_size(tmp);
    fs::rename(tmp, target);
    new_bytes += e.size;
    taken[rel.string()] = e;
    return true;
  };
  for (std::size_t i = 0; i < blobs.size(); ++i) {
    if (i % 64 == 0) progress.show("blobs " + std::to_string(i + 1) + "/" + std::to_string(blobs.size()));
    new_blobs += take(blobs[i], "blob");
  }
  for (const auto& rel : files) {
    progress.show("files: " + rel.string());
    copied_files += take(rel, "file");
  }
  // What the shard no longer has goes from the folder too, so that it mirrors the shard.
  std::size_t removed = 0;
  for (const auto& [path, entry] : previous)
    if (!taken.count(path) && safe_relative(path) && fs::remove(out / path)) ++removed;
  progress.done();

  nlohmann::json manifest = {{"version", kManifestVersion},
                             {"coop_version", kVersion},
                             {"domain", config.domain()},
                             {"home", root.string()},
                             {"created", std::chrono::duration_cast<std::chrono::seconds>(started_at.time_since_epoch()).count()}};
  uint64_t total = 0;
  auto listed = nlohmann::json::object();
  for (const auto& [path, e] : taken) {
    nlohmann::json f = {{"kind", e.kind}, {"size", e.size}, {"sha256", e.sha256}};
    if (e.kind == "file") f["mtime"] = e.mtime;
    listed[path] = std::move(f);
    total += e.size;
  }
  manifest["files"] = std::move(listed);
  sync_filesystem(out);  // every file the manifest names is on disk before the manifest is
  write_file_durably(out / kManifest, manifest.dump(1) + "\n", 0640);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  // For `coop doctor`: where and when the last backup went.
  const auto finished = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  write_file_durably(root / "last_backup.json",
                     nlohmann::json{{"out", out.string()}, {"finished", finished}, {"files", taken.size()}, {"bytes", total}}.dump() + "\n",
                     0640);

  nlohmann::json summary = {{"out", out.string()},          {"databases", databases.size()}, {"blobs", blobs.size()},
                            {"new_blobs", new_blobs},       {"files", files.size()},         {"copied_files", copied_files},
                            {"removed", removed},           {"bytes", total},                {"written_bytes", new_bytes},
                            {"seconds", seconds}};
  if (options.json) {
    print_json(summary);
    return;
  }
  char line[512];
  std::snprintf(line, sizeof line,
                "backup: %zu databases, %zu blobs (%zu new), %zu files (%zu copied), %s in %s, %s written, %.1f s",
                databases.size(), blobs.size(), new_blobs, files.size(), copied_files, format_bytes(total).c_str(), out.c_str(),
                format_bytes(new_bytes).c_str(), seconds);
  std::cout << line << "\n";
}

// Every problem with a backup folder, one line each: missing files, wrong sizes or hashes,
// databases that fail SQLite's quick_check.
std::vector<std::string> verify_folder(const fs::path& dir, const nlohmann::json& manifest, ProgressLine& progress,
                                       std::size_t& checked, uint64_t& bytes) {
  std::vector<std::string> problems;
  const auto files = entries_of(manifest);
  for (const auto& [path, e] : files) {
    progress.show("verify " + std::to_string(checked + 1) + "/" + std::to_string(files.size()));
    ++checked;
    if (!safe_relative(path)) {
      problems.push_back(path + ": not a relative path inside the backup");
      continue;
    }
    const auto file = dir / path;
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    if (ec) {
      problems.push_back(path + ": missing");
      continue;
    }
    if (size != e.size) {
      problems.push_back(path + ": " + std::to_string(size) + " bytes, the manifest says " + std::to_string(e.size));
      continue;
    }
    if (hash_file(file) != e.sha256) {
      problems.push_back(path + ": content differs from its SHA-256 in the manifest");
      continue;
    }
    bytes += size;
    if (e.kind == "database") {
      sqlite3* db = nullptr;
      std::string result = "cannot open";
      if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
          result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        sqlite3_finalize(stmt);
      }
      sqlite3_close_v2(db);
      if (result != "ok") problems.push_back(path + ": SQLite quick_check: " + result);
    }
  }
  return problems;
}

void run_verify(Globals& globals, const std::string& dir_text, bool json) {
  const fs::path dir = fs::absolute(dir_text);
  const auto manifest = read_manifest(dir);
  if (manifest.is_null()) throw Error(errc::kNotFound, "no " + std::string(kManifest) + " in " + dir.string(), 404);
  ProgressLine progress(json);
  std::size_t checked = 0;
  uint64_t bytes = 0;
  const auto problems = verify_folder(dir, manifest, progress, checked, bytes);
  progress.done();
  if (json) {
    print_json({{"dir", dir.string()}, {"files", checked}, {"bytes", bytes}, {"problems", problems}, {"ok", problems.empty()}});
  } else {
    for (const auto& p : problems) std::cerr << "coop: " << p << "\n";
    if (problems.empty())
      std::printf("backup OK: %zu files, %s, every SHA-256 and database check matches\n", checked, format_bytes(bytes).c_str());
  }
  if (!problems.empty()) {
    if (!json) std::cerr << "coop: the backup in " << dir.string() << " has " << problems.size() << " problem(s)\n";
    globals.exit_code = kExitFailed;
  }
}

void run_restore(Globals& globals, const std::string& dir_text, bool json) {
  const fs::path dir = fs::absolute(dir_text);
  const fs::path target = fs::absolute(globals.resolve_home().root());
  const auto manifest = read_manifest(dir);
  if (manifest.is_null()) throw Error(errc::kNotFound, "no " + std::string(kManifest) + " in " + dir.string(), 404);
  if (fs::exists(target) && !(fs::is_directory(target) && fs::is_empty(target)))
    throw Error(errc::kShardExists, target.string() + " exists and is not empty: restore makes a new shard", 409);
  // Checked in full before anything is written: a damaged backup restores nothing.
  ProgressLine progress(json);
  std::size_t checked = 0;
  uint64_t bytes = 0;
  const auto problems = verify_folder(dir, manifest, progress, checked, bytes);
  if (!problems.empty()) {
    progress.done();
    for (const auto& p : problems) std::cerr << "coop: " << p << "\n";
    throw Error(errc::kBadRequest, "the backup in " + dir.string() + " is damaged; nothing was restored", 400);
  }
  // Into a folder beside the target, renamed into place at the end: all or nothing.
  const fs::path staging = target.string() + ".restoring";
  fs::remove_all(staging);
  fs::create_directories(staging);
  ::chmod(staging.c_str(), 0750);
  std::size_t n = 0;
  for (const auto& [path, e] : entries_of(manifest)) {
    progress.show("restore " + std::to_string(++n) + "/" + std::to_string(checked));
    const auto to = staging / path;
    fs::create_directories(to.parent_path());
    if (hash_file(dir / path, to) != e.sha256)
      throw Error(errc::kIoError, path + " changed while it was restored; " + staging.string() + " is incomplete", 500);
    const bool secret = fs::path(path).begin()->string() == "keys";
    ::chmod(to.c_str(), secret ? 0600 : 0640);
  }
  progress.done();
  for (const auto& sub : {"keys", "blobs", "mail", "docs", "tiles"})
    if (fs::exists(staging / sub)) ::chmod((staging / sub).c_str(), std::string(sub) == "keys" ? 0700 : 0750);
  sync_filesystem(staging);
  if (fs::exists(target)) fs::remove(target);
  fs::rename(staging, target);
  fsync_directory(target.parent_path());
  Home(target).ensure_dirs();
  if (json) {
    print_json({{"home", target.string()}, {"files", checked}, {"bytes", bytes}, {"domain", manifest.value("domain", "")}});
    return;
  }
  std::printf("restored %zu files (%s) of %s into %s\nStart it with: coop up --home %s\n", checked, format_bytes(bytes).c_str(),
              manifest.value("domain", "").c_str(), target.c_str(), target.c_str());
}

}  // namespace

void add_backup_commands(CLI::App& app, Globals& globals) {
  auto options = std::make_shared<BackupOptions>();
  auto* backup = app.add_subcommand(
      "backup",
      "Copy the running shard to a folder of plain files: databases, blobs, keys and coop.toml\n\n"
      "Each SQLite database is snapshotted with SQLite's online backup (consistent, while the shard runs), "
      "databases before blobs, so that whatever was acknowledged before the backup began is in it with "
      "everything it points at. Blobs already in the folder are not copied again, so a nightly backup of an "
      "unchanged shard takes seconds; what the shard no longer has leaves the folder. manifest.json lists "
      "every file with its size and SHA-256. Progress on a terminal, one summary line otherwise; exit 1 and "
      "a clear line on any failure.");
  backup->add_option("-o,--out", options->out, "backup folder (created when missing; a previous backup there is updated)");
  backup->add_flag("--json", options->json, "print a JSON summary");
  auto verify_json = std::make_shared<bool>(false);
  auto verify_dir = std::make_shared<std::string>();
  auto* verify = backup->add_subcommand("verify", "Check every file of a backup against its manifest, and every database with SQLite's quick_check");
  verify->add_option("dir", *verify_dir, "backup folder")->required();
  verify->add_flag("--json", *verify_json, "print JSON");
  verify->callback([&globals, verify_dir, verify_json] { run_verify(globals, *verify_dir, *verify_json); });
  backup->callback([&globals, options, backup] {
    if (!backup->get_subcommands().empty()) return;
    if (options->out.empty()) throw CLI::RequiredError("--out");
    run_backup(globals, *options);
  });

  struct RestoreOptions {
    std::string dir;
    bool json = false;
  };
  auto restore_options = std::make_shared<RestoreOptions>();
  auto* restore = app.add_subcommand(
      "restore",
      "Build a new shard in --home from a backup folder\n\nThe new shard's directory (--home) must not exist, or "
      "be empty. Every file is checked against the manifest first (a damaged backup restores nothing); the "
      "shard is assembled beside it and renamed into place. Start it with `coop up --home DIR`: it listens "
      "where the original did, so stop that one first or change the ports.");
  restore->add_option("dir", restore_options->dir, "backup folder")->required();
  restore->add_flag("--json", restore_options->json, "print JSON");
  restore->callback([&globals, restore_options] {
    run_restore(globals, restore_options->dir, restore_options->json);
  });
}

}  // namespace coop::cli
