// SPDX-License-Identifier: GPL-2.0
/*
 * Fixture for apcheck drift, written for apcheck's tests in kernel style (not
 * kernel code): the C side of tests/c/widget.apm. tests/test_drift.py edits
 * copies of it, one kind of drift each.
 */
#include <linux/mutex.h>

static DEFINE_MUTEX(widget_perms_mutex);

static void widget_get_locks(struct widget *w)
{
	mutex_lock(&host->lock);
	if (w->kvm)
		mutex_lock(&w->kvm->lock);
	mutex_lock(&host->list_lock);
}

static void widget_put_locks(struct widget *w)
{
	mutex_unlock(&host->list_lock);
	if (w->kvm)
		mutex_unlock(&w->kvm->lock);
	mutex_unlock(&host->lock);
}

static int widget_assign(struct widget *w)
{
	mutex_lock(&widget_perms_mutex);
	widget_get_locks(w);
	w->busy = 1;
	widget_put_locks(w);
	mutex_unlock(&widget_perms_mutex);
	return 0;
}

static int widget_poke(struct widget *w)
{
	if (!mutex_trylock(&w->lock))
		return -EAGAIN;
	w->busy = 0;
	mutex_unlock(&w->lock);
	return 0;
}
