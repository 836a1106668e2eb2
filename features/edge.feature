Feature: The edge
  Clients that hold connections open or flood them cost the gateway (and the
  services behind it, should they be reached) little,
  and nobody learns its inside from the public port: operator endpoints are
  on a separate admin listener, and error answers name no instance.

  Scenario: Clients that send half a request header are disconnected, and the gateway keeps answering
    Given a running stack
    When 200 clients each send half a request header and then nothing
    Then GET /healthz answers 200
    And the gateway closes all of those connections within 15 seconds

  @needs:fresh-stack
  Scenario: Auth and user instances cut off half-sent request heads too
    Given a fresh stack with 1 user instance
    When 100 clients each send half a request header to every auth and user instance and then nothing
    Then every auth and user instance answers /healthz
    And the instances close all of those connections within 15 seconds

  Scenario: The public port serves no operator detail
    Given a running stack
    Then /metrics is not served on the public port
    And the public /readyz says whether the gateway is ready and nothing more

  @needs:admin
  Scenario: Operators read metrics and readiness detail on the admin listener
    Given a running stack
    Then the admin listener serves the gateway's metrics
    And the admin listener's /readyz lists the instances and any problems

  @needs:fresh-stack
  Scenario: An upstream failure answer names no instance and no system error
    Given a fresh stack with 1 user instance
    And a logged-in user "una"
    When instance 1 of "user" is killed
    And I GET /users/me as "una" by bearer
    Then the answer is a 5xx JSON error naming no instance, address or system error

  @needs:fresh-stack
  Scenario: Past its connection cap the gateway refuses new connections and serves the ones it has
    Given a fresh stack whose gateway allows 20 client connections
    And a client with a kept-alive connection to the gateway
    When stalled connections fill the gateway's connection cap
    Then a new connection is answered 503 and closed
    And the kept-alive connection is still answered
