@needs:instances
Feature: A service that talks to the registry itself
  board (Python, py-consul from PyPI, unchanged) uses the registry as it
  would use Consul in production: it registers itself with a TTL check,
  reads its title from the KV store, finds the greeter by its tag (and by
  an SRV query of the registry's DNS, {dns} in stack.toml) and elects a leader among its instances with a session and a lock. The
  scenarios call it directly ({url:board-N}): it is not behind the gateway.

  Background:
    Given "greeter" has 3 passing instances in the registry within 20 seconds

  Scenario: Its title comes from the KV store, and a change shows without a restart
    Given the registry key "config/board/title" is set to "Team board"
    When I GET {url:board}/board with header "X-User-Id: 1"
    Then the status is 200
    And the JSON at "/title" is "Team board"
    Given the registry key "config/board/title" is set to "Renamed board"
    When I GET {url:board-2}/board with header "X-User-Id: 7" with header "X-Username: kim"
    Then the status is 200
    And the JSON at "/title" is "Renamed board"
    And the JSON at "/greeting/hello" is "kim"

  Scenario: It finds the greeter's passing instances by their tag
    When I GET {url:board}/greeters?tag=v1
    Then the status is 200
    And the JSON at "/greeters" is ["greeter-1", "greeter-2", "greeter-3"]
    When I GET {url:board}/greeters?tag=v2
    Then the JSON at "/greeters" is []

  Scenario: It finds the greeter through the registry's DNS too
    When I GET {url:board}/srv/greeter
    Then the status is 200
    And the JSON at "/ports" has 3 items

  @needs:process
  Scenario: One board leads; when it dies, the other takes the lock
    Given the registry key "service/board/leader" is held by a session within 20 seconds
    When I keep the registry key "service/board/leader" as "leader"
    And I GET {url:board}/board with header "X-User-Id: 1"
    Then the JSON at "/leader" is "{leader}"
    When the instance "{leader}" is killed
    Then the registry key "service/board/leader" is not "{leader}" within 20 seconds
    And the registry key "service/board/leader" is held by a session within 20 seconds
    And the registry lists "{leader}" of "board" as critical within 10 seconds
