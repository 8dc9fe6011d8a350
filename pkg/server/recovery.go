package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// mailSent is the one answer of the e-mail requests, account or not.
const mailSent = "if the address has an account, an e-mail is on its way"

func (s *Server) resendVerification(c echo.Context) error {
	var req api.EmailRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.cfg.Accounts.ResendVerification(c.Request().Context(), req.Email, c.RealIP()); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, api.StatusResponse{Status: "accepted", Message: mailSent})
}

func (s *Server) forgotPassword(c echo.Context) error {
	var req api.EmailRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.cfg.Accounts.ForgotPassword(c.Request().Context(), req.Email, c.RealIP()); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, api.StatusResponse{Status: "accepted", Message: mailSent})
}

func (s *Server) resetPassword(c echo.Context) error {
	var req api.ResetPasswordRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.cfg.Accounts.ResetPassword(c.Request().Context(), req.Token, req.NewPassword); err != nil {
		return err
	}
	// Any session this browser had is over; so are its cookies.
	s.clearSessionCookies(c)
	return c.JSON(http.StatusOK, api.StatusResponse{Status: "reset", Message: "password changed; sign in with the new one"})
}

// deleteMe deletes the caller's account: its VMs through the VM service
// first, then the user.
func (s *Server) deleteMe(c echo.Context) error {
	var req api.DeleteAccountRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	done, err := s.cfg.Accounts.DeleteAccount(c.Request().Context(), caller(c), req.Password, s.deleteAllVMs)
	if err != nil {
		return err
	}
	s.clearSessionCookies(c)
	if done {
		return c.JSON(http.StatusOK, api.StatusResponse{Status: "deleted", Message: "account deleted"})
	}
	return c.JSON(http.StatusAccepted, api.StatusResponse{Status: "deleting",
		Message: "the VMs are being deleted; the account goes with the last of them"})
}

// deleteAllVMs asks the VM service to delete each of u's VMs; one already
// being deleted is fine.
func (s *Server) deleteAllVMs(ctx context.Context, u store.User) error {
	vms, err := s.cfg.VMs.List(ctx, u, false)
	if err != nil {
		return err
	}
	for _, v := range vms {
		if _, err := s.cfg.VMs.Delete(ctx, u, v.ID); err != nil && !errors.Is(err, vm.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}
