"""From the validated spec to the flat plan the native code executes (cf. runc's specconv)."""
