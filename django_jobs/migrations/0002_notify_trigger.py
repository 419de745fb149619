"""PostgreSQL only: NOTIFY workers when a job becomes READY (delivered at commit)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION django_jobs_notify_ready() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('django_jobs', NEW.queue_name);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER django_jobs_job_ready
AFTER INSERT OR UPDATE OF status ON django_jobs_job
FOR EACH ROW WHEN (NEW.status = 'READY')
EXECUTE FUNCTION django_jobs_notify_ready();
"""

DROP = """
DROP TRIGGER IF EXISTS django_jobs_job_ready ON django_jobs_job;
DROP FUNCTION IF EXISTS django_jobs_notify_ready();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
