// SPDX-License-Identifier: GPL-2.0
/* Example driver with two modules: acme_net depends on a symbol of acme_core. */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

int acme_core_version(void)
{
	return ACME_VERSION_CODE;
}
EXPORT_SYMBOL_GPL(acme_core_version);

static int __init acme_core_init(void)
{
	pr_info("acme_core: version %d\n", acme_core_version());
	return 0;
}

static void __exit acme_core_exit(void)
{
}

module_init(acme_core_init);
module_exit(acme_core_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("driver-matrix example: core module");
