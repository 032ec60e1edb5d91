/* A stand-in for a kernel module: only its `.modinfo` section matters to driver-matrix. */
static const char modinfo[] __attribute__((section(".modinfo"), used)) =
    "license=GPL\0name=hello\0vermagic=5.14.0-427.18.1.el9_4.x86_64 SMP preempt mod_unload modversions \0";
int init_module(void) { return 0; }
