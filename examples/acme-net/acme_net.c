// SPDX-License-Identifier: GPL-2.0
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

int acme_core_version(void);

static int __init acme_net_init(void)
{
	pr_info("acme_net: on acme_core %d\n", acme_core_version());
	return 0;
}

static void __exit acme_net_exit(void)
{
}

module_init(acme_net_init);
module_exit(acme_net_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("driver-matrix example: network module");
