Feature: Sick instances and faults between hops
  Real outages are more often sick than dead: an instance answering 503, a
  slow one, a connection reset mid-response, a blackholed address, a slow
  Redis or registry. The fault proxy's links sit in every hop of these
  stacks (inserted through the registry, no setting changed), and the
  gateway survives with outlier detection, retries of idempotent requests
  and a retry budget. Each scenario names the mechanism it proves: switched
  off, the scenario fails.

  # Mechanism: outlier detection (consecutive_5xx) and retry_on gateway-error.
  # With GANTRY_CONSECUTIVE_5XX=0 the sick instance gets its full third; with
  # GANTRY_RETRY_ON=connect-failure,reset its 503s reach the client.
  @needs:fresh-stack
  Scenario: One of three instances answers 503 to everything: it is ejected, GETs are retried elsewhere, it returns when it heals
    Given a fresh stack with fault links and 3 user instances where GANTRY_BASE_EJECTION_TIME is 2s
    And a logged-in user "sid"
    When instance 2 of "user" answers 503 to every request
    And 300 requests are sent to /users/me with 4 concurrent callers as "sid"
    Then no request failed
    And instance 2 of "user" was sent no more requests than its ejections allow
    And the admin metric "gantry_gateway_upstream_ejections_total{service=\"user\",detector=\"consecutive_5xx\"}" is at least 1
    When instance 2 of "user" heals
    Then GET /users/me as "sid" by bearer is answered by instance 2 of "user" within 30 seconds
    And the timeline of the fault on instance 2 of "user" is reported

  # Mechanism: max_ejection_percent. With GANTRY_MAX_EJECTION_PERCENT=100 every
  # instance is ejected and no ejection is ever refused.
  @needs:fresh-stack
  Scenario: Every instance answers 503: the service is not ejected to nothing, the client sees the 503s and nothing hangs
    Given a fresh stack with fault links and 3 user instances
    And a logged-in user "sal"
    When instance 1 of "user" answers 503 to every request
    And instance 2 of "user" answers 503 to every request
    And instance 3 of "user" answers 503 to every request
    And 90 requests are sent to /users/me with 3 concurrent callers as "sal"
    Then every answer is 503
    And the admin metric "gantry_gateway_upstream_ejections_total{service=\"user\",detector=\"consecutive_5xx\"}" is at least 1
    And the admin metric "gantry_gateway_upstream_ejections_overflow_total{service=\"user\"}" is at least 1
    And the timeline of the fault on instance 1 of "user" is reported

  # Mechanism: the retry budget (20 % of requests in flight, at least 10). With
  # GANTRY_RETRY_BUDGET=100 no retry is ever refused and most of the 64
  # callers are retrying at once.
  @needs:fresh-stack
  Scenario: A retry storm: with every instance failing under 64 callers, the budget holds retries to its share
    Given a fresh stack with fault links and 3 user instances where GANTRY_CONSECUTIVE_5XX is 0
    And a logged-in user "sto"
    When instance 1 of "user" answers 503 to every request
    And instance 2 of "user" answers 503 to every request
    And instance 3 of "user" answers 503 to every request
    And 1200 requests are sent to /users/me with 64 concurrent callers as "sto"
    Then every answer is 503
    And the admin metric "gantry_gateway_upstream_retry_overflow_total{service=\"user\"}" is at least 1
    And the gateway never had more retries to "user" in flight than its budget allows

  # Mechanism: power-of-two-choices by requests in flight. With round robin
  # (GANTRY_LB=round_robin) the slow instance keeps its third.
  @needs:fresh-stack
  Scenario: One instance is 200 ms slower: with P2C its share drops well below a third
    Given a fresh stack with fault links and 3 user instances where GANTRY_LB is p2c
    And a logged-in user "pat"
    When instance 2 of "user" gets 200 ms of latency
    And 300 requests are sent to /users/me with 8 concurrent callers as "pat"
    Then no request failed
    And instance 2 of "user" answered at most 15% of the requests
    And the timeline of the fault on instance 2 of "user" is reported

  # What round robin does with the same slow instance: it keeps a third of the
  # traffic, and the tail of the latency shows it; nothing fails.
  @needs:fresh-stack
  Scenario: One instance is 200 ms slower under round robin: the p99 shows it and nothing fails
    Given a fresh stack with fault links and 3 user instances where GANTRY_LB is round_robin
    And a logged-in user "rob"
    When instance 2 of "user" gets 200 ms of latency
    And 150 requests are sent to /users/me with 3 concurrent callers as "rob"
    Then no request failed
    And instance 2 of "user" answered at least 25% of the requests
    And the 99th percentile of latency is at least 200 ms
    And the timeline of the fault on instance 2 of "user" is reported

  # Mechanisms: retry_on reset for idempotent methods only. Retrying a POST
  # (a gateway that ignores idempotency) sends it to two echo upstreams.
  @needs:fresh-stack
  Scenario: Connections reset mid-response: GETs are retried on another instance, a POST gets a clear 502 and is sent once
    Given a fresh stack with fault links and 1 user instance
    And a logged-in user "rae"
    And echo upstreams "echo-1", "echo-2" and "echo-3" are the only instances of "user"
    When "echo-1" resets connections mid-response
    And 60 requests are sent to /users/me with 2 concurrent callers as "rae"
    Then no request failed
    And the admin metric "gantry_gateway_upstream_retries_total{service=\"user\"}" is at least 1
    And the timeline of the fault on "echo-1" is reported
    When "echo-2" resets connections mid-response
    And "echo-3" resets connections mid-response
    And I POST /users/me as "rae" by bearer with JSON {"nickname": "once"}
    Then the status is 502
    And the JSON at "/error" is "upstream_unavailable"
    And the echo upstreams received 1 POST request between them

  # Mechanisms: the per-try timeout, then ejection for a local-origin failure
  # and retry_on gateway-error. With GANTRY_RETRY_ON=connect-failure,reset the
  # timed-out attempts reach the client as 504s.
  @needs:fresh-stack
  Scenario: A blackholed instance: each try times out, it is ejected, no GET fails
    Given a fresh stack with fault links and 3 user instances where GANTRY_REQUEST_TIMEOUT is 500ms
    And a logged-in user "bea"
    When instance 2 of "user" is blackholed
    And 60 requests are sent to /users/me with 2 concurrent callers as "bea"
    Then no request failed
    And the admin metric "gantry_gateway_upstream_ejections_total{service=\"user\",detector=\"consecutive_local_origin_failure\"}" is at least 1
    And the timeline of the fault on instance 2 of "user" is reported

  # Mechanism: Redis's response timeout (1 s) on the gateway's session lookup:
  # a slow Redis is waited for within it, a slower one fails closed.
  @needs:fresh-stack
  Scenario: Redis 300 ms slower on the gateway's hop: sessions still answer; past the timeout they fail closed, bearer tokens keep working
    Given a fresh stack with fault links and 1 user instance
    And a logged-in user "ria"
    When I GET /users/me as "ria" by bearer
    Then the status is 200
    When the hop from instance 1 of "gateway" to "redis" gets 300 ms of latency
    Then GET /users/me as "ria" by session answers 200
    And GET /users/me as "ria" by bearer answers 200
    When the hop from instance 1 of "gateway" to "redis" heals
    And the hop from instance 1 of "gateway" to "redis" gets 1500 ms of latency
    And "ria" is logged in
    Then GET /users/me as "ria" by session answers 503
    And the JSON at "/error" is "session_store_unavailable"
    And GET /users/me as "ria" by bearer answers 200

  # Mechanism: the user service's own Redis timeout: a profile read that
  # cannot be had in time is a 503 with a reason, never a hang or a 500.
  @needs:fresh-stack
  Scenario: The user service's own hop to Redis slowed past its timeout: a clear 503, then it recovers
    Given a fresh stack with fault links and 1 user instance
    And a logged-in user "uma"
    When the hop from instance 1 of "user" to "redis" gets 1500 ms of latency
    Then GET /users/me as "uma" by bearer answers 503
    And the JSON at "/error" exists
    When the hop from instance 1 of "user" to "redis" heals
    Then GET /users/me as "uma" by bearer answers 200 within 10 seconds

  # Mechanism: the gateway serves from its last snapshot while the registry is
  # unreachable, and its blocking query gives up after GANTRY_WATCH_WAIT (plus
  # the call timeout), so a change whose answer vanished on the half-open
  # connection arrives once the hop heals. A query with no timeout stays stuck: the change never comes
  # (the registry's own idle close is put off to 60 s, so it cannot rescue it).
  @needs:fresh-stack
  Scenario: The gateway's connection to the registry goes silent: the last snapshot serves; after it heals, changes arrive
    Given a fresh stack with fault links and 2 user instances where GANTRY_WATCH_WAIT is 3s and GANTRY_HEADER_TIMEOUT is 60s
    And a logged-in user "reg"
    When the hop from instance 1 of "gateway" to "registry" goes silent
    And 60 requests are sent to /users/me with 2 concurrent callers as "reg"
    Then every answer is 200
    And the answers came from 2 instances
    When instance 2 of "user" is stopped
    Then for 5 seconds the gateway keeps "user-2" among its instances of "user"
    When the hop from instance 1 of "gateway" to "registry" heals
    Then once its registry watch gives up, the gateway drops "user-2" from its instances of "user"

  # Mechanism: the revocation feed is pinged; a feed closed or silent past its
  # ping is dropped, and every (re)subscription starts by forgetting every
  # cached identity, since pub/sub lost what was published meanwhile. Without
  # that, gateway 1 keeps the revoked token cached until it expires.
  @needs:fresh-stack
  Scenario Outline: A gateway's hop to Redis <fault> while the user logs out through another: once it heals, that gateway refuses the revoked session and token
    Given a fresh stack with fault links and 1 user instance and 2 gateways
    And a logged-in user "gus"
    And "gus" gets 200 from /users/me by session and by bearer on every gateway
    When the hop from instance 1 of "gateway" to "redis" <fault>
    And "gus" logs out by bearer through gateway 2
    Then the admin metric "gantry_gateway_revocation_feed_lost_total" is at least 1 within 5 seconds
    When the hop from instance 1 of "gateway" to "redis" heals
    Then every gateway refuses the old session of "gus" within 5 seconds
    And every gateway refuses the old token of "gus" within 5 seconds

    Examples:
      | fault         |
      | is cut        |
      | is blackholed |
      | goes silent   |

  # Mechanism: bodies are streamed whatever the pace: 60 000 bytes each way
  # at 16 KB/s take seconds, within the gateway's body and request timeouts.
  @needs:fresh-stack
  Scenario: A bandwidth-limited hop delivers a large response whole
    Given a fresh stack with fault links and 1 user instance
    And a logged-in user "bo"
    And echo upstreams "echo-1" and "echo-2" are the only instances of "user"
    When "echo-1" is limited to 16 KB/s
    And "echo-2" is limited to 16 KB/s
    And "bo" posts 60000 bytes to /users/upload
    Then the answer carried all 60000 bytes back
