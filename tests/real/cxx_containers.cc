// tests/real/cxx_containers.cc — a C++ workload with fixed output, for
// scripts/real-programs.sh (run with and without the preload, outputs diffed).
//
// Four threads each build std::map, std::unordered_map, std::vector and
// std::string structures from their own seeded generator, and pass
// shared_ptr-owned documents to the next thread through a mutex-protected queue,
// so the last owner, which frees a document, is another thread than the one that
// made it. Every result printed is a function of the seeds only (unordered
// containers are summed or sorted before printing). Usage: cxx_containers [SCALE]
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull | 1) {}
    uint64_t next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
    unsigned below(unsigned n) { return static_cast<unsigned>(next() % n); }
};

struct Doc {
    std::string title;
    std::vector<std::string> lines;
    std::map<std::string, int> index;
};
using DocPtr = std::shared_ptr<const Doc>;

// A queue per thread: thread t sends to (t + 1) % N.
struct Mailbox {
    std::mutex m;
    std::condition_variable cv;
    std::deque<DocPtr> q;
    bool closed = false;
    void put(DocPtr d) { { std::lock_guard<std::mutex> g(m); q.push_back(std::move(d)); } cv.notify_one(); }
    void close() { { std::lock_guard<std::mutex> g(m); closed = true; } cv.notify_one(); }
    bool get(DocPtr &d) {
        std::unique_lock<std::mutex> g(m);
        cv.wait(g, [&] { return !q.empty() || closed; });
        if (q.empty()) return false;
        d = std::move(q.front());
        q.pop_front();
        return true;
    }
};

constexpr int N = 4;
Mailbox boxes[N];

std::string word(Rng &r)
{
    std::string w;
    unsigned len = 2 + r.below(10);
    for (unsigned i = 0; i < len; i++) w.push_back(static_cast<char>('a' + r.below(26)));
    return w;
}

DocPtr make_doc(Rng &r, int id)
{
    auto d = std::make_shared<Doc>();
    d->title = "doc-" + std::to_string(id) + "-" + word(r);
    unsigned nlines = 5 + r.below(60);
    for (unsigned i = 0; i < nlines; i++) {
        std::string line;
        unsigned nw = 1 + r.below(15);
        for (unsigned k = 0; k < nw; k++) {
            std::string w = word(r);
            d->index[w]++;
            line += w;
            line += ' ';
        }
        d->lines.push_back(std::move(line));
    }
    return d;
}

struct Result {
    uint64_t map_sum = 0, umap_sum = 0, vec_sum = 0, str_hash = 0, docs_seen = 0, doc_words = 0;
    std::string top;
};

void worker(int t, int scale, Result &res)
{
    Rng r(1000 + static_cast<uint64_t>(t));
    std::map<std::string, uint64_t> m;
    std::unordered_map<uint64_t, std::string> um;
    std::vector<std::vector<uint32_t>> vv;
    int made = 0;
    for (int round = 0; round < 90 * scale; round++) {
        for (int i = 0; i < 3000; i++) {
            std::string k = word(r);
            m[k] += r.below(1000);
            uint64_t key = r.next() % 50000;
            um[key] = k + std::to_string(key);
            if (r.below(4) == 0) um.erase(r.next() % 50000);
        }
        std::vector<uint32_t> v(1000 + r.below(100000));
        std::iota(v.begin(), v.end(), static_cast<uint32_t>(round));
        std::reverse(v.begin(), v.end());
        std::sort(v.begin(), v.end());
        vv.push_back(std::move(v));
        if (vv.size() > 8) vv.erase(vv.begin());
        // documents go to the next thread, which becomes their last owner
        for (int i = 0; i < 20; i++) boxes[(t + 1) % N].put(make_doc(r, t * 1000000 + made++));
        // and we consume what the previous thread sent (non-blocking here)
        for (;;) {
            DocPtr d;
            {
                std::lock_guard<std::mutex> g(boxes[t].m);
                if (boxes[t].q.empty()) break;
                d = std::move(boxes[t].q.front());
                boxes[t].q.pop_front();
            }
            res.docs_seen++;
            for (auto &kv : d->index) res.doc_words += static_cast<uint64_t>(kv.second);
        }
        if (m.size() > 20000) {                       // shrink: erase every other key
            bool odd = false;
            for (auto it = m.begin(); it != m.end();) { if (odd) it = m.erase(it); else ++it; odd = !odd; }
        }
    }
    for (auto &kv : m) res.map_sum += kv.second + kv.first.size();
    for (auto &kv : um) res.umap_sum += kv.first * 31 + kv.second.size();
    for (auto &v : vv) res.vec_sum += std::accumulate(v.begin(), v.end(), uint64_t{0});
    std::vector<std::pair<uint64_t, std::string>> top;
    for (auto &kv : m) top.emplace_back(kv.second, kv.first);
    std::partial_sort(top.begin(), top.begin() + std::min<size_t>(3, top.size()), top.end(),
                      [](const auto &a, const auto &b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    for (size_t i = 0; i < 3 && i < top.size(); i++) res.top += top[i].second + "=" + std::to_string(top[i].first) + " ";
    std::string all;
    for (auto &kv : m) all += kv.first;
    uint64_t h = 1469598103934665603ull;
    for (char c : all) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    res.str_hash = h;
}

}  // namespace

int main(int argc, char **argv)
{
    int scale = argc > 1 ? std::atoi(argv[1]) : 1;
    Result res[N];
    std::vector<std::thread> th;
    for (int t = 0; t < N; t++) th.emplace_back(worker, t, scale, std::ref(res[t]));
    for (auto &x : th) x.join();
    // what is left in the mailboxes is drained (and freed) by the main thread
    uint64_t left = 0, left_words = 0;
    for (auto &b : boxes) {
        b.close();
        DocPtr d;
        while (b.get(d)) { left++; for (auto &kv : d->index) left_words += static_cast<uint64_t>(kv.second); }
    }
    uint64_t docs = left, words = left_words;
    for (int t = 0; t < N; t++) {
        std::printf("thread %d: map %llu umap %llu vec %llu hash %016llx top %s\n", t,
                    static_cast<unsigned long long>(res[t].map_sum), static_cast<unsigned long long>(res[t].umap_sum),
                    static_cast<unsigned long long>(res[t].vec_sum), static_cast<unsigned long long>(res[t].str_hash),
                    res[t].top.c_str());
        docs += res[t].docs_seen;
        words += res[t].doc_words;
    }
    // which thread consumed a document depends on timing; the totals do not
    std::printf("documents %llu words %llu\n", static_cast<unsigned long long>(docs), static_cast<unsigned long long>(words));
    return 0;
}
