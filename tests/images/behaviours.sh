case "$BEHAVIOUR" in
  ok)    echo "hello from stevedore" ;;
  fail)  echo "failing on purpose" >&2; exit 3 ;;
  sleep) sleep "${SLEEP:-5}"; echo "slept ${SLEEP:-5}s" ;;
  env)   env | grep '^STEVEDORE_' | sort ;;
  flaky) if [ "$STEVEDORE_ATTEMPT" = "1" ]; then echo "first attempt fails" >&2; exit 1; fi; echo "attempt $STEVEDORE_ATTEMPT ok" ;;
  *)     echo "unknown BEHAVIOUR $BEHAVIOUR" >&2; exit 2 ;;
esac
