/* tests/api/test_cxx.cc — C++ allocation under the preload: every operator new and
 * delete form (plain, array, sized delete, aligned with std::align_val_t, nothrow)
 * serves our memory (numamalloc_block_info says so) with the alignment asked;
 * operator new of an impossible size throws std::bad_alloc after consulting the
 * new-handler, the nothrow forms return nullptr; standard containers of an
 * over-aligned type work. */
#include <criterion/criterion.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "numamalloc.h"

namespace {

typedef int (*block_info_fn)(const void *, struct numamalloc_block_info *);

block_info_fn block_info()
{
    static block_info_fn f = reinterpret_cast<block_info_fn>(dlsym(RTLD_DEFAULT, "numamalloc_block_info"));
    cr_assert_not_null(reinterpret_cast<void *>(f), "numamalloc_block_info not found: not preloaded?");
    return f;
}

int kind_of(const void *p)
{
    struct numamalloc_block_info bi;
    return block_info()(p, &bi) == 0 ? bi.kind : NUMAMALLOC_KIND_UNKNOWN;
}

/* keep the compiler from eliding new/delete pairs (allowed since C++14) */
template <typename T> T *escape(T *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

void check_ours(const void *p, std::size_t align, const char *what)
{
    cr_assert_not_null(p, "%s", what);
    cr_assert_neq(kind_of(p), NUMAMALLOC_KIND_UNKNOWN, "%s: memory is not numamalloc's", what);
    cr_assert_eq(reinterpret_cast<std::uintptr_t>(p) % align, 0u, "%s = %p: not %zu-aligned", what, p, align);
}

std::size_t huge_size()
{
    volatile std::size_t n = static_cast<std::size_t>(1) << 62;   /* no machine has this */
    return n;
}

struct alignas(256) Over {
    char bytes[300];
    int id;
};

struct Plain {
    long a, b;
};

int handler_calls;
void counting_handler()
{
    /* give up after counting: the standard loop then throws */
    handler_calls++;
    std::set_new_handler(nullptr);
}

}  // namespace

Test(cxx, every_operator_is_interposed)
{
    /* all 20 forms resolve to the preloaded library, so a C++ program never mixes
     * libstdc++'s operator new (which would call our malloc anyway) with ours */
    static const char *const names[] = {
        "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
        "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
        "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
        "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
        "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
    };
    for (const char *name : names) {
        void *f = dlsym(RTLD_DEFAULT, name);
        cr_assert_not_null(f, "%s not found", name);
        Dl_info info;
        cr_assert(dladdr(f, &info), "%s", name);
        cr_assert_not_null(std::strstr(info.dli_fname, "libnumamalloc"), "%s comes from %s", name, info.dli_fname);
    }
}

Test(cxx, plain_and_array_new_delete)
{
    for (std::size_t n : { 0ul, 1ul, 16ul, 100ul, 4096ul, 40000ul, 2ul << 20 }) {
        char *p = escape(static_cast<char *>(::operator new(n)));
        check_ours(p, 16, "operator new");
        std::memset(p, 1, n);
        ::operator delete(p);
        char *a = escape(static_cast<char *>(::operator new[](n)));
        check_ours(a, 16, "operator new[]");
        std::memset(a, 2, n);
        ::operator delete[](a);
        /* sized delete */
        char *s = escape(static_cast<char *>(::operator new(n)));
        ::operator delete(s, n);
        char *sa = escape(static_cast<char *>(::operator new[](n)));
        ::operator delete[](sa, n);
    }
    Plain *one = escape(new Plain{ 1, 2 });
    check_ours(one, alignof(Plain), "new Plain");
    cr_assert_eq(one->a + one->b, 3);
    delete one;
    Plain *many = escape(new Plain[1000]());
    check_ours(many, alignof(Plain), "new Plain[1000]");
    for (int i = 0; i < 1000; i++) cr_assert_eq(many[i].a, 0, "value-initialised");
    delete[] many;
}

Test(cxx, deleting_nullptr_is_a_no_op)
{
    std::align_val_t al{ 64 };
    ::operator delete(nullptr);
    ::operator delete[](nullptr);
    ::operator delete(nullptr, static_cast<std::size_t>(16));
    ::operator delete[](nullptr, static_cast<std::size_t>(16));
    ::operator delete(nullptr, std::nothrow);
    ::operator delete[](nullptr, std::nothrow);
    ::operator delete(nullptr, al);
    ::operator delete[](nullptr, al);
    ::operator delete(nullptr, static_cast<std::size_t>(64), al);
    ::operator delete[](nullptr, static_cast<std::size_t>(64), al);
    ::operator delete(nullptr, al, std::nothrow);
    ::operator delete[](nullptr, al, std::nothrow);
    Plain *p = nullptr;
    delete escape(p);               /* the test fails by crashing if any of these frees */
}

Test(cxx, aligned_new_honours_alignment)
{
    for (std::size_t align = 64; align <= 4096; align <<= 1) {
        for (std::size_t n : { static_cast<std::size_t>(1), align, align + 1, static_cast<std::size_t>(100000) }) {
            std::align_val_t al{ align };
            void *p = escape(::operator new(n, al));
            check_ours(p, align, "operator new(align_val_t)");
            std::memset(p, 3, n);
            ::operator delete(p, al);
            void *a = escape(::operator new[](n, al));
            check_ours(a, align, "operator new[](align_val_t)");
            ::operator delete[](a, al);
            void *s = escape(::operator new(n, al));
            ::operator delete(s, n, al);
            void *sa = escape(::operator new[](n, al));
            ::operator delete[](sa, n, al);
            void *nt = escape(::operator new(n, al, std::nothrow));
            check_ours(nt, align, "operator new(align_val_t, nothrow)");
            ::operator delete(nt, al, std::nothrow);
            void *nta = escape(::operator new[](n, al, std::nothrow));
            check_ours(nta, align, "operator new[](align_val_t, nothrow)");
            ::operator delete[](nta, al, std::nothrow);
        }
    }
    /* the new-expression of an over-aligned type uses the aligned forms */
    Over *o = escape(new Over());
    check_ours(o, 256, "new Over");
    delete o;
    Over *arr = escape(new Over[17]);
    check_ours(arr, 256, "new Over[17]");
    for (int i = 0; i < 17; i++) cr_assert_eq(reinterpret_cast<std::uintptr_t>(&arr[i]) % 256, 0u);
    delete[] arr;
}

Test(cxx, nothrow_forms)
{
    void *p = escape(::operator new(100, std::nothrow));
    check_ours(p, 16, "operator new(nothrow)");
    ::operator delete(p, std::nothrow);
    void *a = escape(::operator new[](100, std::nothrow));
    check_ours(a, 16, "operator new[](nothrow)");
    ::operator delete[](a, std::nothrow);
    cr_assert_null(::operator new(huge_size(), std::nothrow), "nothrow new of 2^62 bytes");
    cr_assert_null(::operator new[](huge_size(), std::nothrow));
    cr_assert_null(::operator new(huge_size(), std::align_val_t{ 64 }, std::nothrow));
    cr_assert_null(::operator new[](huge_size(), std::align_val_t{ 4096 }, std::nothrow));
    cr_assert_null(::operator new(static_cast<std::size_t>(-1), std::nothrow));
}

Test(cxx, huge_new_throws_bad_alloc)
{
    int caught = 0;
    try { escape(::operator new(huge_size())); } catch (const std::bad_alloc &e) { caught++; cr_assert_not_null(e.what()); }
    try { escape(::operator new[](huge_size())); } catch (const std::bad_alloc &) { caught++; }
    try { escape(::operator new(huge_size(), std::align_val_t{ 128 })); } catch (const std::bad_alloc &) { caught++; }
    try { escape(::operator new[](huge_size(), std::align_val_t{ 128 })); } catch (const std::bad_alloc &) { caught++; }
    try { escape(::operator new(static_cast<std::size_t>(-1))); } catch (const std::bad_alloc &) { caught++; }
    cr_assert_eq(caught, 5, "std::bad_alloc thrown %d times of 5", caught);
    /* a vector too big to exist: length_error or bad_alloc, never a crash */
    bool threw = false;
    try {
        std::vector<char> v;
        v.reserve(huge_size());
    } catch (const std::exception &) {
        threw = true;
    }
    cr_assert(threw);
}

Test(cxx, new_handler_is_called_before_throwing)
{
    handler_calls = 0;
    std::set_new_handler(counting_handler);
    bool caught = false;
    try { escape(::operator new(huge_size())); } catch (const std::bad_alloc &) { caught = true; }
    cr_assert(caught);
    cr_assert_eq(handler_calls, 1, "the new-handler ran %d times", handler_calls);
    cr_assert_null(reinterpret_cast<void *>(std::get_new_handler()));
}

Test(cxx, containers_of_over_aligned_types)
{
    std::vector<Over> v;
    for (int i = 0; i < 5000; i++) {
        v.push_back(Over{ {}, i });
        cr_assert_eq(reinterpret_cast<std::uintptr_t>(v.data()) % 256, 0u, "vector storage misaligned at %d", i);
    }
    check_ours(v.data(), 256, "vector<Over> storage");
    for (int i = 0; i < 5000; i++) cr_assert_eq(v[i].id, i);
    std::list<Over> l;
    for (int i = 0; i < 300; i++) l.push_back(Over{ {}, i });
    int k = 0;
    for (const Over &o : l) {
        cr_assert_eq(reinterpret_cast<std::uintptr_t>(&o) % 256, 0u, "list node %d misaligned", k);
        cr_assert_eq(o.id, k++);
    }
    std::map<int, Over> m;
    for (int i = 0; i < 300; i++) m[i].id = i * 2;
    for (const auto &e : m) cr_assert_eq(reinterpret_cast<std::uintptr_t>(&e.second) % 256, 0u);
    cr_assert_eq(m[150].id, 300);
    auto sp = std::make_shared<Over>();
    cr_assert_eq(reinterpret_cast<std::uintptr_t>(sp.get()) % 256, 0u);
    auto up = std::make_unique<Over[]>(9);
    check_ours(up.get(), 256, "make_unique<Over[]>");
}

Test(cxx, everyday_containers_use_our_memory)
{
    std::string s(100000, 'x');
    check_ours(s.data(), 16, "std::string buffer");
    std::unordered_map<std::string, std::vector<int>> um;
    for (int i = 0; i < 20000; i++) um[std::to_string(i)].push_back(i);
    for (int i = 0; i < 20000; i += 997) cr_assert_eq(um[std::to_string(i)].front(), i);
    std::vector<std::unique_ptr<Plain>> owners;
    for (int i = 0; i < 10000; i++) owners.emplace_back(new Plain{ i, -i });
    for (int i = 0; i < 10000; i += 501) {
        check_ours(owners[i].get(), 16, "unique_ptr<Plain>");
        cr_assert_eq(owners[i]->a + owners[i]->b, 0);
    }
    owners.clear();
    um.clear();
}
