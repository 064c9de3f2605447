package configs

import (
	"fmt"
	"regexp"

	"maunium.net/go/mautrix/appservice"
)

// RegistrationID is the appservice ID written by NewRegistration.
const RegistrationID = "pstn-gateway"

// Protocols are the third-party protocols the gateway answers lookups for;
// Element's dial pad looks for either.
var Protocols = []string{"m.protocol.pstn", "im.vector.protocol.pstn"}

// LoadRegistration reads an appservice registration file with mautrix's
// appservice.LoadRegistration and checks that both tokens are set.
func LoadRegistration(path string) (*appservice.Registration, error) {
	reg, err := appservice.LoadRegistration(path)
	if err != nil {
		return nil, fmt.Errorf("configs: registration: %w", err)
	}
	if reg.AppToken == "" || reg.ServerToken == "" {
		return nil, fmt.Errorf("configs: registration %s: as_token and hs_token are required", path)
	}
	return reg, nil
}

// LoadRegistration loads the registration file named by
// appservice.registration and checks it against the configuration.
func (c *Config) LoadRegistration() (*appservice.Registration, error) {
	reg, err := LoadRegistration(c.AppService.Registration)
	if err != nil {
		return nil, err
	}
	if problems := c.CheckRegistration(reg); len(problems) > 0 {
		return nil, &ValidationError{File: c.AppService.Registration, Problems: problems}
	}
	return reg, nil
}

// NewRegistration returns a registration for this configuration with fresh
// random tokens: sender_localpart is the bot, the user namespace reserves
// the ghosts and the bot exclusively, and the PSTN protocols are listed.
// appserviceURL is where the homeserver reaches the gateway.
func (c *Config) NewRegistration(appserviceURL string) *appservice.Registration {
	reg := appservice.CreateRegistration()
	reg.ID = RegistrationID
	reg.URL = appserviceURL
	reg.SenderLocalpart = c.AppService.BotLocalpart
	rateLimited := false
	reg.RateLimited = &rateLimited
	reg.Namespaces.UserIDs = appservice.NamespaceList{
		{Regex: c.GhostUserRegex(), Exclusive: true},
		{Regex: c.BotUserRegex(), Exclusive: true},
	}
	reg.Protocols = append([]string(nil), Protocols...)
	return reg
}

// CheckRegistration reports where a registration disagrees with the
// configuration: missing tokens, another sender_localpart, user namespaces
// that do not cover the ghosts and the bot, a bad URL. Problems never
// contain the tokens.
func (c *Config) CheckRegistration(reg *appservice.Registration) []Problem {
	const path = "appservice.registration"
	var l problemList
	bad := func(format string, args ...any) { l.add(path, 0, format, args...) }
	if reg.AppToken == "" {
		bad("as_token is empty")
	} else if isPlaceholder(reg.AppToken) {
		bad("as_token is still a placeholder")
	}
	if reg.ServerToken == "" {
		bad("hs_token is empty")
	} else if isPlaceholder(reg.ServerToken) {
		bad("hs_token is still a placeholder")
	}
	if reg.AppToken != "" && reg.AppToken == reg.ServerToken {
		bad("as_token and hs_token must differ")
	}
	if reg.ID == "" {
		bad("id is empty")
	}
	if reg.URL == "" {
		bad("url is empty: the homeserver cannot push transactions")
	}
	if reg.SenderLocalpart != c.AppService.BotLocalpart {
		bad("sender_localpart is %q but appservice.bot_localpart is %q", reg.SenderLocalpart, c.AppService.BotLocalpart)
	}
	if !namespaceCovers(reg.Namespaces.UserIDs, string(c.GhostUserID(sampleNumber))) {
		bad("namespaces.users has no exclusive regex matching ghost users like %s (expected %s)", c.GhostUserID(sampleNumber), c.GhostUserRegex())
	}
	if !namespaceCovers(reg.Namespaces.UserIDs, string(c.BotUserID())) {
		bad("namespaces.users has no exclusive regex matching the bot %s (expected %s)", c.BotUserID(), c.BotUserRegex())
	}
	hasProtocol := false
	for _, p := range reg.Protocols {
		for _, want := range Protocols {
			hasProtocol = hasProtocol || p == want
		}
	}
	if !hasProtocol {
		bad("protocols lists neither m.protocol.pstn nor im.vector.protocol.pstn: Element's dial pad will not find the gateway")
	}
	return l.problems
}

// namespaceCovers reports whether an exclusive namespace regex matches userID.
func namespaceCovers(list appservice.NamespaceList, userID string) bool {
	for _, ns := range list {
		re, err := regexp.Compile(ns.Regex)
		if err == nil && ns.Exclusive && re.MatchString(userID) {
			return true
		}
	}
	return false
}
