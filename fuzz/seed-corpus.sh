#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the vendored fixtures (the corpus itself is not committed).
set -euo pipefail
cd "$(dirname "$0")"
fx=../fixtures
mkdir -p corpus/{discord_verify,ingress_discord,ingress_sentry,ingress_glitchtip,command_parse}

# Discord: the docs examples and real captures, given an id/application_id when they lack one.
i=0
for f in "$fx"/discord/api_docs_examples/interaction_*.json; do
  if grep -q '"application_id"' "$f"; then cat "$f"; else sed '0,/{/s//{"id":"1","application_id":"2",/' "$f"; fi \
    > "corpus/ingress_discord/docs_$((i++))"
done
printf '%s' '{"id":"1","application_id":"2","type":2,"token":"t","data":{"name":"bugbot","type":1,"options":[{"name":"fix","type":1,"options":[{"name":"issue","type":3,"value":"ENG-1"},{"name":"repo","type":3,"value":"a/b"}]}]},"member":{"user":{"id":"3","username":"u"},"roles":["4"]}}' \
  > corpus/ingress_discord/slash_fix
printf '%s' '{"id":"1","application_id":"2","type":2,"token":"t","data":{"name":"Fix with bugbot","type":3,"target_id":"9","resolved":{"messages":{"9":{"id":"9","content":"x"}}}}}' \
  > corpus/ingress_discord/menu_fix
printf '%s' '{"type":1,"id":"1","application_id":"2"}' > corpus/ingress_discord/ping
cp corpus/ingress_discord/* corpus/command_parse/

# Sentry: "<resource>\n<body>", resource taken from the file name; the legacy plugin post as "!".
for f in "$fx"/sentry/*/*.json; do
  name=$(basename "$f" .json)
  case "$name" in
    webhook_event_*) resource='!legacy' ;;
    event_for_exception_*) resource=event_alert ;;
    issue_created_for_exception) resource=issue ;;
    *) resource=$(printf '%s' "$name" | sed -E 's/__.*//; s/_(created|deleted|updated|assigned|ignored|resolved|triggered|critical|warning|pr_created|root_cause_completed)$//') ;;
  esac
  { printf '%s\n' "$resource"; cat "$f"; } > "corpus/ingress_sentry/$(basename "$(dirname "$f")")_$name"
done
# Amplified: a 0xFF-delimited unit repeated 3000 times (see src/lib.rs `amplify`).
printf 'event_alert\n{"action":"triggered","data":{"event":{"title":"T","breadcrumbs":[\xff\x0b\xb8{"m":"\\u00e9\\"x"},\xff{}]}}}' \
  > corpus/ingress_sentry/amplified_breadcrumbs

cp "$fx"/glitchtip/*.json corpus/ingress_glitchtip/
printf '{"text":"GlitchTip Alert","attachments":[\xff\x0b\xb8{"title":"t","fields":[{"title":"Project","value":"p"}]},\xff{"title":"last"}]}' \
  > corpus/ingress_glitchtip/amplified_attachments
# Single fields large enough that the job would not fit a queue message (refused with 413).
printf 'issue\n{"action":"\xff\x20\x00aaaaaaaaaa\xff","data":{}}' > corpus/ingress_sentry/amplified_action
printf '{"text":"GlitchTip Alert","attachments":[{"title":"\xff\x34\x00tttttttttt\xff"}]}' \
  > corpus/ingress_glitchtip/amplified_title
printf '%s\xff\x34\x00tttttttttt\xff%s' '{"id":"1","application_id":"2","type":3,"token":"' '","data":{"custom_id":"c"}}' \
  > corpus/ingress_discord/amplified_token
echo "seeded: $(find corpus -type f | wc -l) files"
