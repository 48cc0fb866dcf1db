/* tests/launcher/libmark.c — a preload library of the test's own: the launcher must
 * keep it in LD_PRELOAD (after numamalloc), and prog_launch finds its symbol. */
int nm_launch_test_marker = 1;
