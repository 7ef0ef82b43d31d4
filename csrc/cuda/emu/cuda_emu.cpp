// The fiber scheduler behind cuda_emu.h: runs each block's threads cooperatively, switching at
// barriers, in a seeded random order, and turns what a GPU would punish into emu::Error.
#include "cuda/emu/cuda_emu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

#if !defined(__x86_64__) || defined(__SANITIZE_ADDRESS__)
#define CONVFORGE_EMU_UCONTEXT 1
#include <ucontext.h>
#endif

namespace convforge::emu {

__thread ThreadState* current_thread = nullptr;

namespace {

// ---------------------------------------------------------------------------------------------
// Context switch. glibc's swapcontext makes a signal-mask system call per switch (~0.8 us); the
// x86-64 switch below saves only the callee-saved registers (~20 ns). AddressSanitizer builds
// and other architectures use ucontext, which the sanitizer understands.

#if CONVFORGE_EMU_UCONTEXT
// Under AddressSanitizer every switch is announced with its fiber API, so that it knows which
// stack is live (else an exception thrown on a fiber stack makes it report false errors). A
// fiber learns the scheduler's stack, the OS thread's, when it first lands.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CONVFORGE_EMU_ASAN_FIBERS 1
#endif
struct Context {
  ucontext_t uc;
  const void* stack = nullptr;
  size_t stack_size = 0;
};
void landed(Context* came_from) {
#if CONVFORGE_EMU_ASAN_FIBERS
  const void* bottom = nullptr;
  size_t size = 0;
  __sanitizer_finish_switch_fiber(nullptr, &bottom, &size);
  if (came_from) came_from->stack = bottom, came_from->stack_size = size;
#endif
}
void switch_context(Context& from, Context& to) {
#if CONVFORGE_EMU_ASAN_FIBERS
  __sanitizer_start_switch_fiber(nullptr, to.stack, to.stack_size);
#endif
  swapcontext(&from.uc, &to.uc);
  landed(&to);
}
void make_context(Context& c, char* stack, size_t size, void (*entry)()) {
  c.stack = stack;
  c.stack_size = size;
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#else
extern "C" void convforge_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .pushsection .text
  .globl convforge_emu_switch
  .hidden convforge_emu_switch
  .type convforge_emu_switch, @function
convforge_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size convforge_emu_switch, .-convforge_emu_switch
  .popsection
)");
struct Context {
  void* sp = nullptr;
};
void switch_context(Context& from, Context& to) { convforge_emu_switch(&from.sp, to.sp); }
void landed(Context*) {}
// A fresh stack that "returns" into entry with the alignment of a normal call.
void make_context(Context& c, char* stack, size_t size, void (*entry)()) {
  auto top = reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t(15);
  auto* words = reinterpret_cast<void**>(top);
  words[-1] = nullptr;                          // entry's (never used) return address
  words[-2] = reinterpret_cast<void*>(entry);   // popped by `ret`
  for (int i = 3; i <= 8; ++i) words[-i] = nullptr;  // rbp, rbx, r12-r15
  c.sp = words - 8;
}
#endif

// ---------------------------------------------------------------------------------------------
// Fiber stacks: mmap'ed with a guard page below (an overflow faults instead of corrupting the
// neighbour), allocated once per OS thread and reused by every launch.

constexpr size_t kStackBytes = 256 * 1024;

struct StackPool {
  std::vector<char*> stacks;
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  char* get(size_t i) {
    while (stacks.size() <= i) {
      void* p = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) throw Error("cuda-emulated: cannot allocate fiber stacks");
      mprotect(p, page, PROT_NONE);
      stacks.push_back(static_cast<char*>(p) + page);
    }
    return stacks[i];
  }
  ~StackPool() {
    for (char* s : stacks) munmap(s - page, kStackBytes + page);
  }
};
thread_local StackPool stack_pool;

// ---------------------------------------------------------------------------------------------

enum class Wait { none, block_barrier, warp_op, done };

struct Fiber {
  Context ctx;
  ThreadState ts;
  Wait wait = Wait::none;
  const char* file = "";
  int line = 0;
  unsigned mask = 0;
  int src = 0;
  uint64_t value = 0, result = 0;
};

struct Block {
  const char* kernel_name = "";
  const std::function<void()>* kernel = nullptr;
  std::vector<Fiber> fibers;
  Fiber* running = nullptr;
  Context scheduler;
  std::exception_ptr error;
  std::vector<unsigned char> dynamic_smem;
};
thread_local Block* current_block = nullptr;

std::atomic<uint64_t> global_seed{0};

std::string where(const char* file, int line) {
  std::string f(file);
  auto slash = f.find_last_of('/');
  return (slash == std::string::npos ? f : f.substr(slash + 1)) + ":" + std::to_string(line);
}

std::string str(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

[[noreturn]] void block_fail(const Block& b, const std::string& what) {
  const auto& t = b.fibers.front().ts;
  throw Error(std::string("cuda-emulated: kernel '") + b.kernel_name + "' block " + str(t.block_idx) +
              ": " + what);
}

void fiber_entry() {
  Block* b = current_block;
  landed(&b->scheduler);
  Fiber* f = b->running;
  try {
    (*b->kernel)();
  } catch (...) {
    b->error = std::current_exception();
  }
  f->wait = Wait::done;
  switch_context(f->ctx, b->scheduler);
  __builtin_unreachable();
}

// Suspends the running fiber until the scheduler releases it.
void suspend(Wait kind, const char* file, int line) {
  Block* b = current_block;
  if (!b) throw Error("cuda-emulated: a device function was called outside a kernel launch");
  Fiber* f = b->running;
  f->wait = kind;
  f->file = file;
  f->line = line;
  switch_context(f->ctx, b->scheduler);
}

// Releases the warp-level operations whose participants have all arrived. Returns whether any
// fiber became runnable; throws on a warp operation that some participant can never reach.
bool release_warps(Block& b) {
  bool progress = false;
  const unsigned n = static_cast<unsigned>(b.fibers.size());
  for (unsigned base = 0; base < n; base += 32) {
    const unsigned lanes = std::min(32u, n - base);
    for (unsigned l = 0; l < lanes; ++l) {
      Fiber& f = b.fibers[base + l];
      if (f.wait != Wait::warp_op) continue;
      bool complete = true;
      for (unsigned k = 0; k < lanes; ++k) {
        if (!(f.mask >> k & 1u)) continue;
        const Fiber& g = b.fibers[base + k];
        if (g.wait == Wait::done || g.wait == Wait::block_barrier)
          block_fail(b, "thread " + str(g.ts.thread_idx) +
                            (g.wait == Wait::done ? " exited" : " waits at __syncthreads") +
                            " while lane " + std::to_string(l) + " of its warp waits at the warp operation at " +
                            where(f.file, f.line) + " whose mask includes it (divergent warp operation)");
        if (g.wait != Wait::warp_op) {
          complete = false;
          continue;
        }
        if (g.mask != f.mask || g.line != f.line || std::string(g.file) != f.file)
          block_fail(b, "lanes of one warp wait at different warp operations (" + where(f.file, f.line) +
                            " and " + where(g.file, g.line) + ")");
      }
      if (!complete) continue;
      for (unsigned k = 0; k < lanes; ++k) {
        if (!(f.mask >> k & 1u)) continue;
        Fiber& g = b.fibers[base + k];
        const bool valid = g.src >= 0 && g.src < 32 && unsigned(g.src) < lanes && (f.mask >> g.src & 1u);
        g.result = valid ? b.fibers[base + g.src].value : g.value;
      }
      for (unsigned k = 0; k < lanes; ++k)
        if (f.mask >> k & 1u) b.fibers[base + k].wait = Wait::none;
      progress = true;
    }
  }
  return progress;
}

void run_block(Block& b, std::mt19937_64& rng) {
  const size_t n = b.fibers.size();
  for (size_t i = 0; i < n; ++i) {
    b.fibers[i].wait = Wait::none;
    make_context(b.fibers[i].ctx, stack_pool.get(i), kStackBytes, fiber_entry);
  }
  // Reads of dynamic shared memory that no thread wrote see NaN, not a previous block's data.
  std::fill(b.dynamic_smem.begin(), b.dynamic_smem.end(), 0xff);
  std::vector<size_t> order;
  order.reserve(n);
  for (;;) {
    order.clear();
    for (size_t i = 0; i < n; ++i)
      if (b.fibers[i].wait == Wait::none) order.push_back(i);
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      b.running = &b.fibers[i];
      current_thread = &b.fibers[i].ts;
      switch_context(b.scheduler, b.fibers[i].ctx);
      if (b.error) std::rethrow_exception(b.error);
    }
    if (release_warps(b)) continue;
    size_t done = 0, at_barrier = 0;
    const Fiber* first = nullptr;
    const Fiber* exited = nullptr;
    for (const Fiber& f : b.fibers) {
      if (f.wait == Wait::done) {
        ++done;
        exited = exited ? exited : &f;
      } else if (f.wait == Wait::block_barrier) {
        ++at_barrier;
        if (!first) first = &f;
        else if (f.line != first->line || std::string(f.file) != first->file)
          block_fail(b, "threads " + str(first->ts.thread_idx) + " and " + str(f.ts.thread_idx) +
                            " wait at different __syncthreads (" + where(first->file, first->line) +
                            " and " + where(f.file, f.line) + ")");
      }
    }
    if (done == n) return;
    if (at_barrier + done == n && done > 0)
      block_fail(b, std::to_string(done) + " thread(s), e.g. " + str(exited->ts.thread_idx) +
                        ", exited while " + std::to_string(at_barrier) + " wait at __syncthreads (" +
                        where(first->file, first->line) + "): divergent barrier");
    if (at_barrier == n) {
      for (Fiber& f : b.fibers) f.wait = Wait::none;
      continue;
    }
    block_fail(b, "deadlock: threads wait at warp operations that cannot complete");
  }
}

}  // namespace

[[noreturn]] void fail(const std::string& what) {
  Block* b = current_block;
  if (!b || !current_thread) throw Error("cuda-emulated: " + what);
  throw Error(std::string("cuda-emulated: kernel '") + b->kernel_name + "' block " +
              str(current_thread->block_idx) + " thread " + str(current_thread->thread_idx) + ": " + what);
}

void syncthreads(const char* file, int line) { suspend(Wait::block_barrier, file, line); }

void syncwarp(unsigned mask, const char* file, int line) { warp_exchange(mask, 0, 0, file, line); }

uint64_t warp_exchange(unsigned mask, uint64_t value, int src, const char* file, int line) {
  Block* b = current_block;
  if (!b) throw Error("cuda-emulated: a warp operation was called outside a kernel launch");
  Fiber* f = b->running;
  if (!(mask >> (f->ts.linear % 32) & 1u))
    fail("a warp operation at " + where(file, line) + " is called by a lane outside its mask");
  f->mask = mask;
  f->value = value;
  f->src = src;
  suspend(Wait::warp_op, file, line);
  return f->result;
}

unsigned lane_id() { return current_thread->linear % 32; }

void* dynamic_shared_base(size_t* bytes) {
  Block* b = current_block;
  *bytes = b ? b->dynamic_smem.size() : 0;
  return b ? b->dynamic_smem.data() : nullptr;
}

void set_seed(uint64_t seed) { global_seed = seed; }
uint64_t get_seed() { return global_seed; }

void launch(const char* kernel_name, dim3 grid, dim3 block, size_t dynamic_smem,
            const std::function<void()>& kernel) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  std::ostringstream msg;
  msg << "cuda-emulated: launch of '" << kernel_name << "' with grid (" << grid.x << "," << grid.y
      << "," << grid.z << ") and block (" << block.x << "," << block.y << "," << block.z << "): ";
  if (threads == 0 || threads > kMaxThreadsPerBlock || block.z > 64)
    throw Error(msg.str() + "invalid configuration argument (at most 1024 threads per block, block.z <= 64)");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    throw Error(msg.str() + "invalid configuration argument (grid dimensions out of range)");
  if (dynamic_smem > kMaxDynamicSharedBytes)
    throw Error(msg.str() + "too many resources requested: " + std::to_string(dynamic_smem) +
                " bytes of dynamic shared memory, the limit is " + std::to_string(kMaxDynamicSharedBytes));
  if (current_block) throw Error(msg.str() + "kernels cannot launch kernels in emulation");

  Block b;
  b.kernel_name = kernel_name;
  b.kernel = &kernel;
  b.fibers.resize(threads);
  b.dynamic_smem.resize(dynamic_smem);
  ThreadState* saved = current_thread;
  current_block = &b;
  std::seed_seq seq{global_seed.load(), uint64_t(grid.x), uint64_t(threads)};
  std::mt19937_64 rng(seq);
  try {
    for (unsigned bz = 0; bz < grid.z; ++bz)
      for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
          unsigned i = 0;
          for (unsigned tz = 0; tz < block.z; ++tz)
            for (unsigned ty = 0; ty < block.y; ++ty)
              for (unsigned tx = 0; tx < block.x; ++tx, ++i) {
                ThreadState& t = b.fibers[i].ts;
                t.thread_idx = {tx, ty, tz};
                t.block_idx = {bx, by, bz};
                t.block_dim = block;
                t.grid_dim = grid;
                t.linear = i;
              }
          run_block(b, rng);
        }
  } catch (...) {
    current_block = nullptr;
    current_thread = saved;
    throw;
  }
  current_block = nullptr;
  current_thread = saved;
}

}  // namespace convforge::emu
