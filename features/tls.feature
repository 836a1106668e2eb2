@needs:fresh-stack
Feature: HTTPS through a gateway that terminates TLS
  The gateway terminates TLS itself when given GANTRY_TLS_CERT and
  GANTRY_TLS_KEY, as Kong and Traefik do. Here the harness generates a
  private CA and a certificate for localhost, and the suite's clients trust
  that CA; a deployed stack's private CA is given by GANTRY_CA_CERT. The
  admin listener stays plain HTTP (the operators' private listener), so the
  stack's readiness is waited for there as ever.

  Background:
    Given a fresh stack whose gateway terminates TLS with a certificate the test generates

  Scenario: Register, log in and call by bearer and by session over HTTPS, with a Secure cookie
    Given a logged-in user "tess"
    Then the session cookie "tess" was last given is set with HttpOnly, SameSite=Lax, Path=/, Secure
    And GET /users/me as "tess" by bearer answers 200
    And GET /users/me as "tess" by session answers 200
    And the answer names "tess" and comes from a user instance
    When "tess" logs out by session
    Then GET /users/me as "tess" by bearer answers 401

  Scenario: The library's steps speak HTTPS to the stack too
    Given a user "uma" with password "uma-correct-horse" is registered
    And "uma" is logged in
    When I GET /users/me as "uma"
    Then the status is 200
    And the JSON at "/username" is "uma"
    When I GET /healthz
    Then the status is 200
    When 200 requests are sent to /users/me with 4 concurrent callers as "uma"
    Then no request failed

  Scenario: Plain HTTP sent to the TLS port is answered 400, saying to use https, and closed
    Then a plain-HTTP request to the gateway's TLS port is answered 400 "https_required" and its connection closed

  Scenario: A client that does not trust the CA cannot connect
    Then a client that does not trust the stack's CA fails the TLS handshake, and one that does gets through

  Scenario: The suite validates an https:// deployment in external mode
    Then the suite in external mode, given the gateway's https URL and GANTRY_CA_CERT, passes scenarios through it
