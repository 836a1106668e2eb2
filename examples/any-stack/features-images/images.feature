@needs:process
Feature: The example's services as images, on the stack's network
  Every container of the stack joins one network, where it is known by its
  service's name and its instance's. notes (an image) asks the greeter (an
  image, 3 replicas) by the name "greeter" (Docker's DNS answers with every
  running replica) and through the gateway; a greeter killed is its
  container killed.

  Background:
    Given a new user "ivy" is logged in

  Scenario: The gateway balances over the greeter's containers
    When 300 requests are sent to /greet/hello with 6 concurrent callers as "ivy"
    Then every answer is 200
    And the answers are spread evenly over 3 instances by a chi-square test

  Scenario: One image calls another by its service's name, and the name outlives the replica it first reached
    When I GET /notes/greeting/direct as "ivy"
    Then the status is 200
    And the JSON at "/greeting/hello" is "{ivy.username}"
    And the JSON at "/greeting/greeting" is "hello from a mounted file"
    When I keep the JSON at "/greeting/instance" as "first"
    And the instance "{first}" is killed
    And 60 requests are sent to /notes/greeting/direct with 3 concurrent callers as "ivy"
    Then no request failed
    And the registry lists "{first}" of "greeter" as not passing within 10 seconds

  Scenario: Calls by name survive a greeter killed under them
    When 300 requests are sent to /notes/greeting/direct with 6 concurrent callers as "ivy" while instance 2 of "greeter" is killed
    Then no request failed

  Scenario: One image calls another through the gateway
    When 200 requests are sent to /notes/greeting with 4 concurrent callers as "ivy" while instance 1 of "greeter" is killed
    Then no request failed

  Scenario: A greeter killed is its container: the gateway stops sending to it, and it comes back
    When instance 3 of "greeter" is killed
    Then instance 3 of "greeter" is critical in the registry within 10 seconds
    When 60 requests are sent to /greet/hello with 3 concurrent callers as "ivy"
    Then no request failed
    And no answer came from instance 3 of "greeter"
    When instance 3 of "greeter" starts again
    Then GET /greet/hello as "ivy" is answered by instance 3 of "greeter" within 40 seconds
