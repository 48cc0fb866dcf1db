// tests/preload/prog_tls_cxx.cc — allocation inside C++ thread_local destructors.
//
// glibc runs thread_local destructors (__call_tls_dtors) before the pthread key
// destructors, and for the main thread from exit(); each destructor here checks
// and frees containers built during the thread's life and builds new ones (small,
// medium and large: operator new and delete, all routed to the allocator). One
// thread_local is first touched from inside another's destructor, so it is
// constructed and registered while glibc is already running the destructor list.
// A helper program for tests/preload/test_threads.c; prints fixed text, exits 0.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <unistd.h>

static std::atomic<int> destroyed{0}, late_destroyed{0}, bad{0};

static unsigned long churn(unsigned seed)
{
    // small strings and map nodes, a medium vector, a large vector
    std::map<int, std::string> m;
    for (int i = 0; i < 300; i++) m[i] = std::string(static_cast<size_t>(i % 40 + 1), static_cast<char>('a' + (seed + i) % 26));
    std::vector<unsigned> medium(30000, seed);
    std::vector<unsigned char> large(3u << 20, static_cast<unsigned char>(seed));
    unsigned long sum = 0;
    for (auto &kv : m) sum += kv.second.size() + static_cast<unsigned char>(kv.second[0]);
    sum += medium[12345] + large[(3u << 20) - 1];
    return sum;
}

static void say(const char *s) { (void)!write(1, s, std::char_traits<char>::length(s)); }

struct Late {
    unsigned seed;
    std::vector<std::string> v;
    explicit Late(unsigned s) : seed(s) { for (int i = 0; i < 50; i++) v.emplace_back(100, 'x'); }
    ~Late() {
        for (auto &s : v) if (s != std::string(100, 'x')) bad++;
        churn(seed);
        late_destroyed++;
        if (seed == 99) say(bad.load() ? "main: late object BAD\n" : "main: late object destroyed, ok\n");
    }
};

static thread_local std::unique_ptr<Late> late_slot;

struct Holder {
    unsigned seed = 0;
    std::map<std::string, std::vector<int>> data;
    std::shared_ptr<std::string> shared;
    void fill(unsigned s) {
        seed = s;
        for (int i = 0; i < 200; i++) data["k" + std::to_string(i)] = std::vector<int>(static_cast<size_t>(i), static_cast<int>(s));
        shared = std::make_shared<std::string>(5000, 'q');
    }
    ~Holder() {
        if (seed == 0) return;                       // never filled (not used on this thread)
        for (auto &kv : data)
            for (int x : kv.second) if (x != static_cast<int>(seed)) { bad++; break; }
        if (data.size() != 200 || shared->size() != 5000) bad++;
        data.clear();
        churn(seed);
        // first touch of another thread_local from inside a destructor
        late_slot.reset(new Late(seed));
        destroyed++;
        if (seed == 99) say(bad.load() ? "main: holder BAD\n" : "main: holder destroyed, ok\n");
    }
};

static thread_local Holder holder;
static thread_local std::vector<std::string> strings;

int main()
{
    std::vector<std::thread> threads;
    for (unsigned t = 1; t <= 4; t++)
        threads.emplace_back([t] {
            holder.fill(t);
            for (int i = 0; i < 1000; i++) strings.push_back(std::to_string(i * t));
            churn(t);
        });
    for (auto &t : threads) t.join();
    int d = destroyed.load(), l = late_destroyed.load();
    std::printf("threads: %d holders destroyed, %d late objects destroyed, %s\n", d, l, bad.load() ? "BAD" : "ok");
    std::fflush(stdout);
    // the main thread's thread_locals are destroyed by exit()
    holder.fill(99);
    return (d == 4 && l == 4 && bad.load() == 0) ? 0 : 1;
}
