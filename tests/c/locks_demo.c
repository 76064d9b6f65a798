// SPDX-License-Identifier: GPL-2.0
/*
 * Fixture for apcheck extract, written for apcheck's tests in kernel style.
 * It is not kernel code: a made-up "widget" driver whose functions use the
 * locking constructs that apcheck extract must follow.
 */
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/cleanup.h>

struct widget_host {
	struct mutex lock;
	struct mutex list_lock;
	struct list_head widgets;
};

struct widget {
	struct mutex lock;
	spinlock_t irq_lock;
	struct widget_host *host;
	struct kvm *kvm;
	struct list_head node;
	int busy;
};

static struct widget_host *host;
static DEFINE_MUTEX(widget_perms_mutex);

#define WIDGET_LOCK_ALL(w) mutex_lock(&(w)->lock)

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

static int widget_assign(struct widget *w, int id)
{
	int ret = 0;

	mutex_lock(&widget_perms_mutex);
	widget_get_locks(w);
	if (w->busy) {
		ret = -EBUSY;
		goto out_unlock;
	}
	w->busy = id;
out_unlock:
	widget_put_locks(w);
	mutex_unlock(&widget_perms_mutex);
	return ret;
}

static int widget_setup(struct widget *w)
{
	int ret;

	mutex_lock(&host->lock);
	ret = widget_alloc(w);
	if (ret)
		goto err_unlock_host;
	mutex_lock(&w->lock);
	ret = widget_register(w);
	if (ret)
		goto err_unlock_widget;
	mutex_unlock(&w->lock);
	mutex_unlock(&host->lock);
	return 0;

err_unlock_widget:
	mutex_unlock(&w->lock);
err_unlock_host:
	mutex_unlock(&host->lock);
	return ret;
}

static int widget_poke(struct widget *w)
{
	if (!mutex_trylock(&w->lock))
		return -EAGAIN;
	w->busy = 0;
	mutex_unlock(&w->lock);
	return 0;
}

static void widget_irq(struct widget *w)
{
	unsigned long flags;

	spin_lock_irqsave(&w->irq_lock, flags);
	w->busy = 1;
	spin_unlock_irqrestore(&w->irq_lock, flags);
}

static int widget_guarded(struct widget *w)
{
	guard(mutex)(&host->lock);
	if (!w->kvm)
		return -ENODEV;
	scoped_guard(mutex, &w->kvm->lock) {
		w->busy = 2;
	}
	return 0;
}

static void widget_scan(void)
{
	struct widget *w;

	mutex_lock(&host->list_lock);
	list_for_each_entry(w, &host->widgets, node) {
		mutex_lock(&w->lock);
		w->busy = 0;
		mutex_unlock(&w->lock);
	}
	mutex_unlock(&host->list_lock);
}

static void widget_macro(struct widget *w)
{
	WIDGET_LOCK_ALL(w);
	w->busy = 3;
	mutex_unlock(&w->lock);
}

static int widget_wait(struct widget *w)
{
	if (mutex_lock_interruptible(&w->lock))
		return -EINTR;
	lockdep_assert_held(&w->lock);
	mutex_unlock(&w->lock);
	return 0;
}

static int widget_switch(struct widget *w, int cmd)
{
	switch (cmd) {
	case 1:
		mutex_lock(&w->lock);
		w->busy = 1;
		mutex_unlock(&w->lock);
		break;
	case 2:
		down_read(&w->host->sem);
		/* fall through */
	default:
		w->busy = 0;
	}
	return 0;
}

static void widget_unknown_block(struct widget *w)
{
	widget_do_magic(w) {
		mutex_lock(&w->lock);
	}
}
