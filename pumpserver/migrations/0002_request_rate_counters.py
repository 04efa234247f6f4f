"""The shared counter of the request rate limit (pumpserver.limits): one row per key (a token's SHA-256 hash, a
user or a client address) with its current fixed window and the requests counted in it.

UNLOGGED: no write-ahead log for a row written on every request; after a crash PostgreSQL empties the table,
which only forgives the requests of the current minute. No Django model: pumpserver.limits reads and writes it in
one statement of its own. fillfactor leaves room on each page so that an update stays on its page (HOT).
"""

from django.db import migrations

CREATE = """
CREATE UNLOGGED TABLE request_rate_counters (
    key text PRIMARY KEY,
    window_start bigint NOT NULL,
    hits integer NOT NULL
) WITH (fillfactor = 50);
COMMENT ON TABLE request_rate_counters IS
    'Request rate limit: requests per key (token hash, user, client address) in its current fixed window';
"""


class Migration(migrations.Migration):

    dependencies = [
        ("pumpserver", "0001_kernel_tables"),
    ]

    operations = [
        migrations.RunSQL(CREATE, reverse_sql="DROP TABLE request_rate_counters"),
    ]
