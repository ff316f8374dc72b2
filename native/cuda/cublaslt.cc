// The cuBLASLt loader (cublaslt.h): dlopen, every symbol resolved, the version checked against
// the file name. Every failure becomes a line in Library::tried and a reason; nothing here
// throws or aborts, so a broken or foreign library can at worst leave the GEMMs on our own
// kernels. The python3 query runs in a child process under a deadline, so a hanging or
// missing interpreter costs at most that deadline, once.
#include "cuda/cublaslt.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <glob.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

extern char** environ;

namespace pit::cuda::lt {
namespace {

constexpr int kPythonTimeoutMs = 5000;
constexpr size_t kPythonOutputLimit = 1 << 20;
constexpr int kSupportedMajors[] = {12, 13};

struct Candidate {
  std::string path;    // what dlopen is given: a path, or a soname for the linker's search
  std::string source;  // "PIT_CUBLASLT", "soname", "python3"
};

std::string dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

// The file the linker mapped for `handle`, symlinks resolved; "" when it cannot tell.
std::string mapped_path(void* handle) {
  struct link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || !map || !map->l_name || !*map->l_name) return "";
  char resolved[PATH_MAX];
  return realpath(map->l_name, resolved) ? std::string(resolved) : std::string(map->l_name);
}

// The major version a file name promises: libcublasLt.so.13.1.0.3 -> 13; -1 when it has none.
int major_from_name(const std::string& path) {
  const std::string base = path.substr(path.find_last_of('/') + 1);
  const size_t at = base.find(".so.");
  if (at == std::string::npos) return -1;
  const char* digits = base.c_str() + at + 4;
  char* end = nullptr;
  const long major = std::strtol(digits, &end, 10);
  return end == digits ? -1 : static_cast<int>(major);
}

template <typename Fn>
bool resolve(void* handle, const char* name, Fn* out, std::string* missing) {
  dlerror();
  *out = reinterpret_cast<Fn>(dlsym(handle, name));
  if (*out) return true;
  if (!missing->empty()) *missing += ", ";
  *missing += name;
  return false;
}

// Tries one candidate; on success fills api and lib (except source) and returns true.
bool try_load(const Candidate& c, Api* api, Library* lib, std::string* outcome) {
  dlerror();
  void* handle = dlopen(c.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    *outcome = "dlopen failed: " + dl_error();
    return false;
  }
  Api a{};
  std::string missing;
  bool ok = resolve(handle, "cublasLtCreate", &a.create, &missing);
  ok &= resolve(handle, "cublasLtDestroy", &a.destroy, &missing);
  ok &= resolve(handle, "cublasLtGetVersion", &a.get_version, &missing);
  ok &= resolve(handle, "cublasLtMatmulDescCreate", &a.matmul_desc_create, &missing);
  ok &= resolve(handle, "cublasLtMatmulDescDestroy", &a.matmul_desc_destroy, &missing);
  ok &= resolve(handle, "cublasLtMatmulDescSetAttribute", &a.matmul_desc_set_attribute, &missing);
  ok &= resolve(handle, "cublasLtMatrixLayoutCreate", &a.matrix_layout_create, &missing);
  ok &= resolve(handle, "cublasLtMatrixLayoutDestroy", &a.matrix_layout_destroy, &missing);
  ok &= resolve(handle, "cublasLtMatrixLayoutSetAttribute", &a.matrix_layout_set_attribute, &missing);
  ok &= resolve(handle, "cublasLtMatmulPreferenceCreate", &a.matmul_preference_create, &missing);
  ok &= resolve(handle, "cublasLtMatmulPreferenceDestroy", &a.matmul_preference_destroy, &missing);
  ok &= resolve(handle, "cublasLtMatmulPreferenceSetAttribute", &a.matmul_preference_set_attribute, &missing);
  ok &= resolve(handle, "cublasLtMatmulAlgoGetHeuristic", &a.matmul_algo_get_heuristic, &missing);
  ok &= resolve(handle, "cublasLtMatmul", &a.matmul, &missing);
  const std::string path = mapped_path(handle);
  const std::string where = path.empty() ? c.path : path;
  if (!ok) {
    *outcome = where + " lacks " + missing + " (not cuBLASLt, or an incompatible version)";
    dlclose(handle);
    return false;
  }
  std::string unused;
  resolve(handle, "cublasLtGetStatusName", &a.get_status_name, &unused);  // optional

  const size_t version = a.get_version();
  const int major = static_cast<int>(version / 10000);
  // The name that promises a major: the resolved file, else what was asked for.
  int named = major_from_name(path);
  if (named < 0) named = major_from_name(c.path);
  if (named >= 0 && named != major) {
    *outcome = where + " reports version " + version_string(version) + " (major " + std::to_string(major) +
               ") but its file name says major " + std::to_string(named);
    dlclose(handle);
    return false;
  }
  bool supported = false;
  for (int m : kSupportedMajors) supported |= m == major;
  if (!supported) {
    *outcome = where + " is cuBLASLt " + version_string(version) +
               "; only majors 12 and 13 are supported (the declarations were checked against those)";
    dlclose(handle);
    return false;
  }
  // Loaded: the handle stays open for the life of the process.
  *api = a;
  lib->loaded = true;
  lib->path = where;
  lib->version = version;
  *outcome = "loaded " + where + " (" + version_string(version) + ")";
  return true;
}

// The sys.path of the python3 on PATH, one folder per line; "" and a reason on failure.
// posix_spawnp, a pipe, and poll under a deadline; the child is killed when it runs over.
std::vector<std::string> python_sys_path(std::string* failure) {
  int fds[2];
  // Close-on-exec: a child another thread forks meanwhile must not hold the write end (our
  // read would then wait for it, not for python3). dup2 onto stdout clears the flag there.
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *failure = std::string("pipe failed: ") + std::strerror(errno);
    return {};
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  const char* argv[] = {"python3", "-c", "import sys; print('\\n'.join(p for p in sys.path if p))", nullptr};
  pid_t pid = -1;
  const int spawned = posix_spawnp(&pid, "python3", &actions, nullptr, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (spawned != 0) {
    close(fds[0]);
    *failure = std::string("could not start python3: ") + std::strerror(spawned);
    return {};
  }
  std::string out;
  bool timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kPythonTimeoutMs);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd p = {fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = ready == 0;
      break;
    }
    char buf[4096];
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child closed stdout
    if (out.size() < kPythonOutputLimit) out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    *failure = "python3 did not answer within " + std::to_string(kPythonTimeoutMs / 1000) + " s (killed)";
    return {};
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *failure = WIFEXITED(status) ? "python3 exited with status " + std::to_string(WEXITSTATUS(status))
                                 : "python3 was killed by signal " + std::to_string(WTERMSIG(status));
    return {};
  }
  std::vector<std::string> dirs;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '/') dirs.push_back(line);
  return dirs;
}

// PyTorch's CUDA wheels: <site-packages>/nvidia/cu13/lib/libcublasLt.so.13 (CUDA 13) or
// nvidia/cublas/lib/libcublasLt.so.12 (CUDA 12). All .so.13 first, then all .so.12.
std::vector<Candidate> python_candidates(std::string* note) {
  std::string failure;
  const std::vector<std::string> dirs = python_sys_path(&failure);
  if (!failure.empty()) {
    *note = "python3's site-packages: " + failure;
    return {};
  }
  std::vector<Candidate> found;
  for (const char* soname : {"libcublasLt.so.13", "libcublasLt.so.12"}) {
    for (const std::string& dir : dirs) {
      glob_t g;
      const std::string pattern = dir + "/nvidia/*/lib/" + soname;
      if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) found.push_back({g.gl_pathv[i], "python3"});
      globfree(&g);
    }
  }
  if (found.empty())
    *note = "python3's site-packages: no nvidia/*/lib/libcublasLt.so.{13,12} under its " + std::to_string(dirs.size()) +
            " sys.path folders";
  return found;
}

struct State {
  std::once_flag once;
  Library lib;
  Api api{};
};

State& state() {
  static State* s = new State();  // never destroyed: the library stays mapped to the end
  return *s;
}

void load(State& s) {
  Library& lib = s.lib;
#if defined(PIT_CUBLASLT_MISMATCH)
  lib.declarations = std::string("FAILED the check against ") + PIT_CUBLASLT_MISMATCH;
  lib.reason = std::string("this build's cuBLASLt declarations (native/cuda/cublaslt.h) disagree with ") +
               PIT_CUBLASLT_MISMATCH + " (native/cuda/dev/cublaslt_check.cc failed at configure; see build-cuda/build.log)";
  return;
#elif defined(PIT_CUBLASLT_CHECKED)
  lib.declarations = std::string("checked against ") + PIT_CUBLASLT_CHECKED + " at build";
#else
  lib.declarations = "not checked at build (no cublasLt.h where this addon was built)";
#endif
  auto attempt = [&](const Candidate& c, std::string* outcome) {
    const bool ok = try_load(c, &s.api, &lib, outcome);
    lib.tried.push_back(c.source + " " + c.path + ": " + *outcome);
    if (ok) lib.source = c.source;
    return ok;
  };
  std::string outcome;
  const char* env = std::getenv("PIT_CUBLASLT");
  if (env && *env) {
    if (!attempt({env, "PIT_CUBLASLT"}, &outcome)) lib.reason = "PIT_CUBLASLT=" + std::string(env) + ": " + outcome;
    return;
  }
  for (const char* soname : {"libcublasLt.so.13", "libcublasLt.so.12"})
    if (attempt({soname, "soname"}, &outcome)) return;
  std::string note;
  for (const Candidate& c : python_candidates(&note))
    if (attempt(c, &outcome)) return;
  if (!note.empty()) lib.tried.push_back(note);
  std::string all;
  for (const std::string& t : lib.tried) all += (all.empty() ? "" : "; ") + t;
  lib.reason = "no usable cuBLASLt: " + all;
}

}  // namespace

const Library& library() {
  State& s = state();
  std::call_once(s.once, [&s] { load(s); });
  return s.lib;
}

const Api* api() { return library().loaded ? &state().api : nullptr; }

std::string version_string(size_t version) {
  return std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." + std::to_string(version % 100);
}

std::string status_text(Status status) {
  const int code = static_cast<int>(status);
  const Api* a = api();
  const char* name = a && a->get_status_name ? a->get_status_name(status) : nullptr;
  return (name ? std::string(name) : std::string("cublasStatus_t")) + " (" + std::to_string(code) + ")";
}

}  // namespace pit::cuda::lt
