"""Delete expired unfinished tus uploads and orphaned upload files (run it from cron)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from rover.services.uploads import UPLOAD_LIFETIME, upload_orphans_prune, upload_prune_expired


class Command(BaseCommand):
    help = (
        "Delete unfinished uploads past their expiry (24 h after creation) with their files, "
        "and files under MEDIA_ROOT/uploads older than that which no upload owns."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args, dry_run: bool, **options):
        expired = upload_prune_expired(dry_run=dry_run)
        orphans = upload_orphans_prune(dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        hours = UPLOAD_LIFETIME.total_seconds() / 3600
        self.stdout.write(
            f"{verb} {expired} expired upload(s) and {orphans} orphaned upload file(s) "
            f"(older than {hours:g} h)."
        )
