// SPDX-License-Identifier: GPL-2.0
/* The smallest real out-of-tree module: built by driver-matrix once per kernel. */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

static int __init hello_init(void)
{
	pr_info("hello-kmod: loaded\n");
	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("hello-kmod: unloaded\n");
}

module_init(hello_init);
module_exit(hello_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("driver-matrix example module");
MODULE_VERSION("1.0");
