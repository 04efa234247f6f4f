"""What the audit trail hears from the kernel: its writes for a caller (pumpserver.changes), recorded like any other."""

from audit.services import record_change


def record_kernel_change(sender, *, action, object_type, object_id, before=None, after=None, **_):
    record_change(action=action, object_type=object_type, object_id=object_id, before=before, after=after)
